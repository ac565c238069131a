package hsm

import "testing"

func TestRefusedPINs(t *testing.T) {
	r := NewRefusedPINs()
	if r.Refused("piv:serial=1", "123456") {
		t.Fatal("an empty memory refuses a PIN")
	}
	r.Refuse("piv:serial=1", "123456")
	r.Refuse("piv:serial=1", "654321")
	for _, tc := range []struct {
		token, pin string
		want       bool
	}{
		{"piv:serial=1", "123456", true},
		{"piv:serial=1", "654321", true},
		{"piv:serial=1", "1234567", false}, // another PIN (a corrected file)
		{"piv:serial=2", "123456", false},  // another card
	} {
		if got := r.Refused(tc.token, tc.pin); got != tc.want {
			t.Errorf("Refused(%s, %s) = %v, want %v", tc.token, tc.pin, got, tc.want)
		}
	}
	// Another memory has another key: fingerprints mean nothing elsewhere.
	if r2 := NewRefusedPINs(); r2.fingerprint("123456") == r.fingerprint("123456") {
		t.Error("two memories share their HMAC key")
	}
	r.Forget("piv:serial=1")
	if r.Refused("piv:serial=1", "123456") {
		t.Error("Forget kept a refused PIN")
	}
}
