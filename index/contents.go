package index

import "strings"

// A Search-R1 corpus row {"id", "contents"} holds the title and the text in
// one string, "\"Title\"\ntext". The index splits it (Doc.Title, Doc.Text)
// and Doc.Contents joins them again; for the rows where that round trip
// would change the string (no quotes around the title, no newline, "\r\n",
// a lone quote, ...), the Doc keeps the row's contents verbatim, so that the
// server returns every passage exactly as the corpus had it.

// ContentsDoc is the Doc of a corpus row {"id": id, "contents": contents}:
// Title is the first line without its surrounding double quotes, Text the
// rest, and Contents() gives contents back unchanged.
func ContentsDoc(id, contents string) Doc {
	d := Doc{ID: id}
	d.Title, d.Text = splitContents(contents)
	if d.Contents() != contents {
		d.verbatim, d.hasVerbatim = contents, true
	}
	return d
}

// splitContents splits "\"Title\"\ntext" into the title (quotes removed)
// and the text.
func splitContents(c string) (string, string) {
	title, text, _ := strings.Cut(c, "\n")
	if len(title) >= 2 && title[0] == '"' && title[len(title)-1] == '"' {
		title = title[1 : len(title)-1]
	}
	return title, text
}

// verbatimMark starts the stored title of a Doc kept verbatim (docs.bin,
// FORMAT.md). 0xFF never occurs in UTF-8, and every string the index
// stores comes from JSON, which is UTF-8, so no other title starts with it.
const verbatimMark = "\xff"

// stored is the Doc's docs.bin record: id, title, text; or, for a Doc kept
// verbatim, id, verbatimMark + contents, "".
func (d Doc) stored() [3]string {
	if d.hasVerbatim {
		return [3]string{d.ID, verbatimMark + d.verbatim, ""}
	}
	return [3]string{d.ID, d.Title, d.Text}
}

// storedDoc is the Doc of a docs.bin record.
func storedDoc(f [3]string) Doc {
	if f[2] == "" && strings.HasPrefix(f[1], verbatimMark) {
		return ContentsDoc(f[0], f[1][len(verbatimMark):])
	}
	return Doc{ID: f[0], Title: f[1], Text: f[2]}
}
