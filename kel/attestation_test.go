package kel

import (
	"strings"
	"testing"
)

func TestAttestationSAIDInput(t *testing.T) {
	hashes := strings.Repeat("#", 44)
	tests := []struct {
		name string
		doc  string
		want string // without the version string's size, filled in below
	}{
		{
			name: "absent d and v are appended, d first",
			doc:  `{"rid":"abc","b":2,"a":1}`,
			want: `{"a":1,"b":2,"rid":"abc","d":"` + hashes + `","v":"%s"}`,
		},
		{
			name: "present d and v keep their sorted place, x dropped",
			doc:  `{ "x": "sig", "v": "old", "d": "Eold", "z": true, "a": [1.0, 2e3] }`,
			want: `{"a":[1,2000],"d":"` + hashes + `","v":"%s","z":true}`,
		},
		{
			name: "empty object",
			doc:  `{}`,
			want: `{"d":"` + hashes + `","v":"%s"}`,
		},
		{
			name: "UTF-16 key order and minimal escapes",
			doc:  `{"\ud83d\ude00":1,"\ufb33":2,"\u003c":"\u00e9"}`,
			want: "{\"<\":\"\u00e9\",\"\U0001F600\":1,\"\ufb33\":2,\"d\":\"" + hashes + `","v":"%s"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := attestationSAIDInput([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			// The version string has a fixed width: fill in the final size.
			want := strings.Replace(tc.want, "%s", versionString(0), 1)
			want = strings.Replace(tc.want, "%s", versionString(len(want)), 1)
			if string(got) != want {
				t.Errorf("SAID input\n got %s\nwant %s", got, want)
			}
			said, err := AttestationSAID([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if said != Digest([]byte(want)) || len(said) != SAIDLen || said[0] != 'E' {
				t.Errorf("SAID %s, want %s", said, Digest([]byte(want)))
			}
		})
	}
}

func TestAttestationSAIDStable(t *testing.T) {
	a, err := AttestationSAID([]byte(`{"rid":"r1","device":"did:key:z6Mk","x":"one"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := AttestationSAID([]byte("{\n  \"device\": \"did:key:z6Mk\",\n  \"x\": \"two\",\n  \"rid\": \"r1\"\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("SAID depends on x, order or whitespace: %s vs %s", a, b)
	}
	c, _ := AttestationSAID([]byte(`{"rid":"r2","device":"did:key:z6Mk"}`))
	if c == a {
		t.Errorf("different documents share SAID %s", a)
	}
}

func TestAttestationSAIDBadInput(t *testing.T) {
	for _, doc := range []string{``, `[]`, `null`, `"s"`, `{"a":1,"a":2}`, `{"a":}`, `{"a":1} x`} {
		if said, err := AttestationSAID([]byte(doc)); err == nil {
			t.Errorf("AttestationSAID(%q) = %s, want an error", doc, said)
		}
	}
}
