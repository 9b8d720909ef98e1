-- SPDX-License-Identifier: Apache-2.0
-- wrk script: the same ~1 KB chat request as chat.lua with "stream": true,
-- so the response is a chunked text/event-stream of SSE chunks.
--   wrk -t1 -c64 -d5s -s tools/bench/stream.lua http://127.0.0.1:9000/v1/chat/completions
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "chat.lua")
wrk.body = wrk.body:gsub("}%s*$", ',"stream":true}')
assert(wrk.body:find('"stream":true}$'), "stream.lua: cannot add stream to chat.lua's body")
