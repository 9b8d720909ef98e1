# SPDX-License-Identifier: Apache-2.0
# Sourced by the bench scripts: put one "## TITLE" section into a results
# file, replacing the old one (up to the next "## " heading or the end) or
# appending it when there was none; the rest of the file is left as it was.
#
#   write_section TITLE SECTION_FILE RESULTS_FILE
write_section() {
	local title=$1 section=$2 results=$3 tmp
	tmp=$(mktemp)
	touch "$results"
	awk -v title="## $title" -v section="$section" '
		function emit(  line) {
			while ((getline line < section) > 0)
				print line
			close(section)
			done = 1
		}
		$0 == title { emit(); skipping = 1; next }
		skipping && /^## / { skipping = 0; print "" }
		!skipping { print }
		END {
			if (!done) {
				if (NR > 0)
					print ""
				emit()
			}
		}
	' "$results" >"$tmp"
	cp "$tmp" "$results"
	rm -f "$tmp"
}
