-- SPDX-License-Identifier: Apache-2.0
-- wrk script: a ~1 KB non-stream chat completion request.
--   wrk -t1 -c64 -d5s -s tools/bench/chat.lua http://127.0.0.1:9000/v1/chat/completions
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-small","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmarking an AI gateway. You are benchmar"}],"max_tokens":16,"temperature":0.2}'
-- tools/bench/auth.sh passes a credential this way.
local auth = os.getenv("SLUICE_AUTH")
if auth and auth ~= "" then
	wrk.headers["Authorization"] = auth
end
-- Or a file of bearer tokens, one per line, sent in turn (a new token on
-- most requests: what identity costs when nothing is cached).
local file = os.getenv("SLUICE_TOKENS")
if file and file ~= "" then
	local tokens = {}
	for line in io.lines(file) do
		tokens[#tokens + 1] = line
	end
	local i = 0
	request = function()
		i = i % #tokens + 1
		wrk.headers["Authorization"] = "Bearer " .. tokens[i]
		return wrk.format()
	end
end
