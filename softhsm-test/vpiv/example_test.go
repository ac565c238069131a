package vpiv_test

import (
	"encoding/hex"
	"fmt"

	"github.com/auths-dev/auths-agent/softhsm-test/vpiv"
)

// A card answers APDUs in-process; Serve puts the same card behind vpcd.
func Example() {
	card, err := vpiv.New(vpiv.Config{Serial: 10000001})
	if err != nil {
		panic(err)
	}
	for _, cmd := range []string{"00a4040005a000000308", "00fd000000", "00f8000000", "0020008000"} {
		b, _ := hex.DecodeString(cmd)
		fmt.Println(hex.EncodeToString(card.Transmit(b)))
	}
	// Output:
	// 61114f0600001000010079074f05a0000003089000
	// 0507019000
	// 009896819000
	// 63c3
}
