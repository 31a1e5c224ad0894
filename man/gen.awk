# SPDX-License-Identifier: MIT
#
# gen.awk - turn one man/*.3.in template into a man page, taking the
# declarations and doc comments from include/evq.h, so that what the
# header says and what the page says cannot drift apart.
#
#   awk -f gen.awk -v version=X -v warn=FILE include/evq.h PAGE.3.in
#
# The template is roff with these lines of its own, each alone on a line:
#   @SYNOPSIS name...@  #include <evq.h>, then each name: a function (its
#                       prototype, types in bold, parameters in italics),
#                       a typedef, "struct x" or "enum x" (public fields
#                       only), or a macro; then the link line.
#   @DOC name@          the comment right above name's prototype in evq.h
#   @BLOCK words@       the comment in evq.h that has a line beginning with
#                       words, from the line after that one to its end
# and @VERSION@ anywhere. Problems are appended to the warn file: a name
# evq.h lacks; @DOC of a function with no comment; a function of the page
# whose comment the page leaves out, or that is in NAME but not in
# SYNOPSIS (or the other way round); an error code the header documents
# for a function of the page that the ERRORS section does not list. They
# are not fatal: the build goes on, and the man_pages test fails.
#
# POSIX awk only (Debian's default awk is mawk): no gensub, no intervals.

function problem(msg) {
	printf "%s: %s\n", page, msg >> warn
	close(warn)
}

function trim(s) {
	sub(/^[ \t]+/, "", s)
	sub(/[ \t]+$/, "", s)
	return s
}

# Tabs to spaces, 8 columns, as the header is laid out.
function untab(s,	out, i, c) {
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\t") {
			do
				out = out " "
			while (length(out) % 8)
		} else {
			out = out c
		}
	}
	return out
}

# Text that goes into roff as it is: backslashes and control characters.
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	if (s ~ /^[.']/)
		s = "\\&" s
	return s
}

# Prose from a comment: like esc(), plus fonts. Function names, "name(2)"
# references, error codes and CONSTANT_NAMES are set in bold. A hyphen
# inside a word ("level-triggered") stays a hyphen; a minus sign or an
# option dash becomes \-.
function prose(s,	out, pre, m) {
	gsub(/\\/, "\\e", s)
	out = ""
	while (match(s, /-E[A-Z][A-Z0-9]+|[A-Za-z_][A-Za-z0-9_]*\([0-9]?\)|[A-Z][A-Z0-9]*_[A-Z0-9_]+/)) {
		pre = substr(s, 1, RSTART - 1)
		m = substr(s, RSTART, RLENGTH)
		s = substr(s, RSTART + RLENGTH)
		if (pre ~ /[A-Za-z0-9_]$/ || s ~ /^[A-Za-z0-9_]/) {
			out = out dashes(pre) dashes(m)	# part of a word
		} else if (m ~ /\)$/) {
			sub(/\(/, "\\fP(", m)	# the name bold, "(2)" roman
			out = out dashes(pre) "\\fB" m
		} else {
			gsub(/-/, "\\-", m)
			out = out dashes(pre) "\\fB" m "\\fP"
		}
	}
	s = out dashes(s)
	if (s ~ /^[.']/)
		s = "\\&" s
	return s
}

# A dash that is not between two letters is a minus or an option dash.
function dashes(s,	out, i, c, prev, next_c) {
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "-") {
			prev = i > 1 ? substr(s, i - 1, 1) : ""
			next_c = substr(s, i + 1, 1)
			if (prev ~ /[A-Za-z0-9]/ && next_c ~ /[A-Za-z]/)
				out = out "-"
			else
				out = out "\\-"
		} else {
			out = out c
		}
	}
	return out
}

# ---------------------------------------------------------------------
# Reading evq.h
# ---------------------------------------------------------------------

# One line of a comment, without its markers. Leading spaces after the
# "* " are kept: they mark list items and their continuation lines.
function comment_text(line) {
	sub(/[ \t]*\*\/[ \t]*$/, "", line)
	sub(/^[ \t]*\/\*+ ?/, "", line)
	sub(/^[ \t]*\* ?/, "", line)
	sub(/[ \t]+$/, "", line)
	return line
}

function end_comment() {
	ncomments++
	comments[ncomments] = cbuf
	last_comment = cbuf
	last_comment_line = FNR
}

function end_decl(	text, name, p) {
	text = decl
	gsub(/[ \t\n]+/, " ", text)
	sub(/^EVQ_API /, "", text)
	sub(/ ;$/, ";", text)
	if (text ~ /^typedef/) {
		name = text
		sub(/^[^(]*\(\*/, "", name)
		sub(/\).*/, "", name)
		kind[name] = "code"
		code[name] = decl_raw
	} else {
		p = index(text, "(")
		name = substr(text, 1, p - 1)
		sub(/.*[^A-Za-z0-9_]/, "", name)
		kind[name] = "func"
		proto[name] = text
		funcs[++nfuncs] = name
		if (last_comment_line == decl_start - 1)
			doc[name] = last_comment
	}
	decl = ""
}

FNR == NR {
	line = $0
	if (in_comment) {
		if (depth == 0)
			cbuf = cbuf "\n" comment_text(line)
		if (line ~ /\*\//) {
			in_comment = 0
			if (depth == 0)
				end_comment()
		}
		if (depth > 0 && public_part)
			body = body "\n" line
		next
	}
	if (decl != "") {
		decl = decl " " line
		decl_raw = decl_raw "\n" line
		if (line ~ /;[ \t]*$/)
			end_decl()
		next
	}
	if (depth > 0) {
		if (line ~ /\/\* private \*\//)
			public_part = 0
		if (line ~ /^}/) {
			depth = 0
			if (!public_part)
				body = body "\n\t/* and private fields */"
			code[body_name] = body "\n" line
			kind[body_name] = "code"
			next
		}
		if (public_part)
			body = body "\n" line
		if (line ~ /\/\*/ && line !~ /\*\//)
			in_comment = 1
		next
	}
	if (line ~ /^[ \t]*\/\*/) {
		cbuf = comment_text(line)
		if (line ~ /\*\//)
			end_comment()
		else
			in_comment = 1
		next
	}
	if (line ~ /^(struct|enum) [a-z_]+ \{/) {
		body_name = line
		sub(/ \{.*/, "", body_name)
		body = line
		depth = 1
		public_part = 1
		next
	}
	if (line ~ /^#define EVQ_[A-Z0-9_]+[ \t(]/ && line !~ /^#define EVQ_API/) {
		name = line
		sub(/^#define /, "", name)
		sub(/[ \t(].*/, "", name)
		kind[name] = "code"
		code[name] = line
		next
	}
	if (line ~ /^(EVQ_API|typedef) /) {
		decl = line
		decl_raw = line
		decl_start = FNR
		if (line ~ /;[ \t]*$/)
			end_decl()
		next
	}
	next
}

# ---------------------------------------------------------------------
# Writing the page
# ---------------------------------------------------------------------

# A comment's text as roff: paragraphs, and "- " items as a bullet list.
function render(text,	n, lines, i, l, in_list, need_pp) {
	n = split(text, lines, "\n")
	in_list = 0
	need_pp = 0
	for (i = 1; i <= n; i++) {
		l = lines[i]
		if (l ~ /^-+$/)
			continue
		if (trim(l) == "") {
			need_pp = 1
			continue
		}
		if (l ~ /^ *- /) {
			sub(/^ *- /, "", l)
			print ".IP \\(bu 2"
			in_list = 1
			need_pp = 0
		} else if (in_list && l ~ /^   /) {
			# continuation of an item
		} else if (in_list || need_pp) {
			print ".PP"
			in_list = 0
			need_pp = 0
		}
		print prose(trim(l))
	}
	if (in_list)
		print ".PP"
}

# A prototype as ".BI" lines (types bold, parameter names italic), the
# parameters packed into lines of at most 72 columns, continuation lines
# aligned after the "(".
function synopsis_func(name,	text, head, params, n, plist, i, p, pname,
			ptype, indent, line, width, piece, last) {
	text = proto[name]
	head = substr(text, 1, index(text, "("))
	params = substr(text, index(text, "(") + 1)
	sub(/\);$/, "", params)
	n = split(params, plist, ",")
	indent = sprintf("%" length(head) "s", "")
	line = ".BI \"" esc(head)
	width = length(head)
	for (i = 1; i <= n; i++) {
		p = trim(plist[i])
		last = i == n ? ");" : ","
		pname = p
		sub(/.*[^A-Za-z0-9_]/, "", pname)
		ptype = substr(p, 1, length(p) - length(pname))
		if (p == "void" || ptype == "") {
			ptype = p
			pname = ""
		}
		piece = length(ptype pname last) + (i > 1)
		if (i > 1 && width + piece > 72) {
			print line "\""
			line = ".BI \"" indent
			width = length(indent)
		} else if (i > 1) {
			line = line " "
		}
		width += piece
		if (pname == "")
			line = line esc(ptype) last
		else
			line = line esc(ptype) "\" " pname " \"" last
	}
	print line "\""
}

function synopsis(names,	n, list, i, nm, prev) {
	print ".nf"
	print ".B #include <evq.h>"
	n = split(names, list, " ")
	prev = ""
	for (i = 1; i <= n; i++) {
		nm = list[i]
		if (nm == "struct" || nm == "enum") {
			nm = nm " " list[++i]
		}
		if (!(nm in kind)) {
			problem("@SYNOPSIS@ names " nm ", which evq.h does not declare")
			continue
		}
		# A blank line before each entry; one-line macros in a run.
		if (!(kind[nm] == "code" && prev == "code" &&
		      code[nm] !~ /\n/ && !prev_multi))
			print ""
		prev = kind[nm]
		prev_multi = code[nm] ~ /\n/
		if (kind[nm] == "func") {
			on_page[nm] = 1
			synopsis_func(nm)
		} else {
			print_code(code[nm])
		}
	}
	print ".fi"
	print ".PP"
	print "Link with"
	print ".IR \\-levq ,"
	print "or with what"
	print ".I pkg\\-config \\-\\-cflags \\-\\-libs evq"
	print "prints."
}

function print_code(text,	n, lines, i) {
	n = split(text, lines, "\n")
	for (i = 1; i <= n; i++)
		print esc(untab(lines[i]))
}

function block(words,	i, n, lines, j, out, found) {
	for (i = 1; i <= ncomments; i++) {
		n = split(comments[i], lines, "\n")
		found = 0
		out = ""
		for (j = 1; j <= n; j++) {
			if (found)
				out = out lines[j] "\n"
			else if (index(trim(lines[j]), words) == 1)
				found = 1
		}
		if (found)
			return out
	}
	problem("@BLOCK " words "@: no comment in evq.h has a line beginning so")
	return ""
}

# Error codes the header documents for name: each must be in ERRORS.
function want_errors(name,	s, code_) {
	s = doc[name]
	while (match(s, /-E[A-Z][A-Z0-9]+/)) {
		code_ = substr(s, RSTART + 1, RLENGTH - 1)
		s = substr(s, RSTART + RLENGTH)
		if (!(code_ in wanted))
			wanted_by[code_] = name
		wanted[code_] = 1
	}
}

{
	line = $0
	gsub(/@VERSION@/, version, line)
	if (line ~ /^\.SH /) {
		section = line
		sub(/^\.SH +/, "", section)
		gsub(/"/, "", section)
	}
	if (section == "ERRORS") {
		s = line
		while (match(s, /E[A-Z][A-Z0-9]+/)) {
			listed[substr(s, RSTART, RLENGTH)] = 1
			s = substr(s, RSTART + RLENGTH)
		}
	}
	if (section == "NAME" && line !~ /^\./ && index(line, "\\-")) {
		s = substr(line, 1, index(line, "\\-") - 1)
		gsub(/[ ,]+/, " ", s)
		n = split(trim(s), parts, " ")
		for (i = 1; i <= n; i++)
			in_name[parts[i]] = 1
	}
	if (line ~ /^@SYNOPSIS( .*)?@$/) {
		sub(/^@SYNOPSIS ?/, "", line)
		sub(/@$/, "", line)
		synopsis(line)
		next
	}
	if (line ~ /^@DOC [a-z_0-9]+@$/) {
		name = line
		sub(/^@DOC /, "", name)
		sub(/@$/, "", name)
		if (!(name in proto))
			problem("@DOC " name "@: evq.h declares no such function")
		else if (!(name in doc))
			problem("@DOC " name "@: no comment right above it in evq.h")
		else
			render(doc[name])
		doc_used[name] = 1
		next
	}
	if (line ~ /^@BLOCK .*@$/) {
		sub(/^@BLOCK /, "", line)
		sub(/@$/, "", line)
		render(block(line))
		next
	}
	if (line ~ /@[A-Z]+[ @]/)
		problem("unknown directive: " line)
	print line
	# Identifiers are long and full of underscores: no hyphenation, and
	# ragged right rather than wide gaps.
	if (line ~ /^\.TH /) {
		print ".nh"
		print ".ad l"
	}
}

END {
	for (name in in_name)
		if ((name in proto) && !(name in on_page))
			problem("NAME lists " name "() but SYNOPSIS does not")
	for (name in on_page)
		if (!(name in in_name))
			problem("SYNOPSIS has " name "() but NAME does not")
	for (name in on_page)
		if ((name in doc) && !(name in doc_used))
			problem("evq.h has a comment above " name \
				"(); the template has no @DOC " name "@")
	for (name in on_page)
		want_errors(name)
	for (c in wanted)
		if (!(c in listed))
			problem("evq.h documents -" c " for " wanted_by[c] \
				"(); the ERRORS section does not list it")
}
