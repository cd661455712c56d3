package main

import "testing"

func TestStripMarkup(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"strongs words", `In the <w lemma="strong:H7225">beginning</w> <w lemma="strong:H0430">God</w> created.`, "In the beginning God created."},
		{"footnote removed", `made.<note placement="foot"><reference type="annotateRef">2.3 </reference>created…: Heb. created to make</note>  <div eID="gen12" type="x-p"/>`, "made."},
		{"title removed", `<title type="psalm" canonical="true">A Psalm of David.</title> The LORD is my shepherd`, "The LORD is my shepherd"},
		{"transChange kept", `darkness <transChange type="added">was</transChange> upon`, "darkness was upon"},
		{"entities", `Tom &amp; Jerry &lt;3 &quot;hi&quot;`, `Tom & Jerry <3 "hi"`},
		{"space before punctuation", `<w>earth</w> . <w>void</w> ;`, "earth. void;"},
		{"pilcrow and spaces", "¶  And\n\tthen ", "And then"},
		{"gbf note", `word<RF>a note<Rf> <FI>added<Fi> more`, "word added more"},
		{"empty", ``, ``},
		{"markup only", `<chapter osisID="Gen.1" sID="Gen.1"/>`, ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := StripMarkup(tc.in); got != tc.want {
				t.Errorf("StripMarkup(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFixDropCaps(t *testing.T) {
	tests := []struct{ in, want string }{
		{"EN el principio crió Dios", "En el principio crió Dios"},
		{"Y FUERON acabados los cielos", "Y fueron acabados los cielos"},
		{"Y dijo Dios", "Y dijo Dios"},
		{"Y A Abraham", "Y A Abraham"},
		{"ÉSTE es el libro", "Éste es el libro"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := FixDropCaps(tc.in); got != tc.want {
			t.Errorf("FixDropCaps(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
