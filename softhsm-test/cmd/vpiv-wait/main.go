// Command vpiv-wait waits until piv-go can open every virtual card of the
// rig, then prints one line per card: the serial (decimal), a tab and the
// reader name, in the order of -serials.
//
//	vpiv-wait -serials 10000001,10000002 [-timeout 15s]
//
// It exits 1 with the cards it did find when the time runs out, 2 on bad
// usage. It must run in the rig's namespace (softhsm-test/vpiv-exec).
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-piv/piv-go/v2/piv"
)

func main() {
	os.Exit(run())
}

func run() int {
	serialsFlag := flag.String("serials", "", "comma-separated decimal `serials` to wait for (required)")
	timeout := flag.Duration("timeout", 15*time.Second, "how long to wait")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "vpiv-wait: unexpected argument %q\n", flag.Arg(0))
		return 2
	}
	var want []uint32
	for _, s := range strings.Split(*serialsFlag, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vpiv-wait: -serials: %q is not a serial number\n", s)
			return 2
		}
		want = append(want, uint32(n))
	}
	deadline := time.Now().Add(*timeout)
	found := map[uint32]string{}
	lastErr := map[string]string{}
	for {
		readers, err := piv.Cards()
		if err != nil {
			lastErr["pcscd"] = err.Error()
		}
		for _, r := range readers {
			if inMap(found, r) {
				continue
			}
			serial, err := probe(r)
			if err != nil {
				lastErr[r] = err.Error()
				continue
			}
			delete(lastErr, r)
			found[serial] = r
		}
		missing := 0
		for _, s := range want {
			if _, ok := found[s]; !ok {
				missing++
			}
		}
		if missing == 0 {
			for _, s := range want {
				fmt.Printf("%d\t%s\n", s, found[s])
			}
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "vpiv-wait: after %s, %d of %d cards not open-able by piv-go\n", *timeout, missing, len(want))
			for _, s := range want {
				if r, ok := found[s]; ok {
					fmt.Fprintf(os.Stderr, "  card %d: ok in %q\n", s, r)
				} else {
					fmt.Fprintf(os.Stderr, "  card %d: not found\n", s)
				}
			}
			keys := make([]string, 0, len(lastErr))
			for k := range lastErr {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(os.Stderr, "  %s: %s\n", k, lastErr[k])
			}
			if len(readers) == 0 {
				fmt.Fprintln(os.Stderr, "  no readers listed: is pcscd running in this namespace (softhsm-test/vpiv-exec)?")
			}
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// probe opens the card in reader r and reads its serial.
func probe(r string) (uint32, error) {
	yk, err := piv.Open(r)
	if err != nil {
		return 0, err
	}
	defer yk.Close()
	return yk.Serial()
}

func inMap(m map[uint32]string, r string) bool {
	for _, v := range m {
		if v == r {
			return true
		}
	}
	return false
}
