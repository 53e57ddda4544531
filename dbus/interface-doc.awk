# dbus/interface-doc.awk: the interface description (dbus/org.cpmsync.xml,
# the contract's plus the daemon's additions) as installed, with each
# comment that stands before an <interface>, <method>, <signal> or
# <property> turned into an
# org.gtk.GDBus.DocString annotation of that element, so that gdbus-codegen
# and other binding generators carry the documentation.  The comment before
# <node> (the file's preamble) stays a comment.  Line-based: one element
# start tag per line, as the contract is written.
#
#   awk -f dbus/interface-doc.awk dbus/org.cpmsync.xml > org.cpmsync.xml

function esc(s) {
	gsub(/&/, "\\&amp;", s)
	gsub(/</, "\\&lt;", s)
	gsub(/>/, "\\&gt;", s)
	gsub(/"/, "\\&quot;", s)
	gsub(/\n/, "\\&#10;", s)
	return s
}

function trim(s) {
	sub(/^[ \t]+/, "", s)
	sub(/[ \t\r]+$/, "", s)
	return s
}

BEGIN { in_node = 0; collecting = 0; doc = ""; failed = 0 }

!in_node {
	print
	if ($0 ~ /<node[ >]/ || $0 ~ /<node$/) in_node = 1
	next
}

collecting || /<!--/ {
	line = $0
	if (!collecting) {
		sub(/.*<!--/, "", line)
		collecting = 1
		text = ""
	}
	done = line ~ /-->/
	if (done) sub(/-->.*/, "", line)
	line = trim(line)
	if (line != "") text = text (text == "" ? "" : "\n") line
	if (done) {
		collecting = 0
		if (doc != "") {
			print "interface-doc.awk: line " NR ": two comments before one element" > "/dev/stderr"
			failed = 1
		}
		doc = text
	}
	next
}

doc != "" && /^[ \t]*<(interface|method|signal|property)[ >]/ {
	match($0, /^[ \t]*/)
	indent = substr($0, 1, RLENGTH)
	name = $0
	sub(/^[ \t]*</, "", name)
	sub(/[ >].*/, "", name)
	ann = indent "  <annotation name=\"org.gtk.GDBus.DocString\" value=\"" esc(doc) "\"/>"
	if ($0 ~ /\/>[ \t\r]*$/) {
		open = $0
		sub(/[ \t]*\/>[ \t\r]*$/, ">", open)
		print open
		print ann
		print indent "</" name ">"
	} else {
		print
		print ann
	}
	doc = ""
	next
}

doc != "" && /</ {
	print "interface-doc.awk: line " NR ": a comment before something that is not an interface member" > "/dev/stderr"
	failed = 1
	doc = ""
}

{ print }

END {
	if (collecting) {
		print "interface-doc.awk: unterminated comment" > "/dev/stderr"
		failed = 1
	}
	exit failed
}
