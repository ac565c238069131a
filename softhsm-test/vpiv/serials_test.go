package vpiv

import "testing"

func TestSerials(t *testing.T) {
	for _, tc := range []struct {
		env, err string
		want     int
		out      []uint32
	}{
		{env: "101, 202,303", want: 2, out: []uint32{101, 202, 303}},
		{env: "7", want: 1, out: []uint32{7}},
		{env: " ", want: 2, err: `VPIV_SERIALS is empty: these tests need 2 cards of the virtual card rig`},
		{env: "1,x", want: 1, err: `VPIV_SERIALS="1,x": "x" is not a decimal serial`},
		{env: "1,4294967296", want: 1, err: `VPIV_SERIALS="1,4294967296": "4294967296" is not a decimal serial`},
		{env: "1,2", want: 3, err: `VPIV_SERIALS="1,2": these tests need 3 cards, it names 2`},
	} {
		t.Setenv(SerialsEnv, tc.env)
		out, err := Serials(tc.want)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("Serials(%d) with %q: error %v, want %s", tc.want, tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || len(out) != len(tc.out) {
			t.Fatalf("Serials(%d) with %q = %v, %v; want %v", tc.want, tc.env, out, err, tc.out)
		}
		for i := range out {
			if out[i] != tc.out[i] {
				t.Errorf("Serials(%d) with %q = %v, want %v", tc.want, tc.env, out, tc.out)
			}
		}
	}
}
