package piv

import (
	"context"
	"sort"

	"github.com/go-piv/piv-go/v2/piv"
)

// CardInfo describes a card present in a reader.
type CardInfo struct {
	Serial  uint32
	Reader  string
	Version piv.Version
	Slots   []KeyInfo // slots holding a key, in Slots() order
	Err     error     // set when the card was found but could not be read
}

// VersionString returns the card's firmware version as "5.7.1".
func (ci CardInfo) VersionString() string { return versionString(ci.Version) }

// Cards lists the YubiKeys present (opening those this Provider does not
// hold yet) with the slots that hold keys. notes say, for people, why some
// readers gave nothing (a card that is not a YubiKey, a card in use by
// another program). Errors: ErrNoPCSCD when pcscd is not running.
func (p *Provider) Cards(ctx context.Context) (cards []CardInfo, notes []string, err error) {
	found, notes, err := p.scan(ctx)
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(found, func(i, j int) bool { return found[i].serial < found[j].serial })
	for _, f := range found {
		ci := CardInfo{Serial: f.serial, Reader: f.reader}
		c, err := p.card(f.serial)
		if err == nil {
			err = c.do(ctx, func(yk *piv.YubiKey) error {
				ci.Reader, ci.Version = c.reader, yk.Version()
				for _, n := range Slots() {
					info, err := slotInfo(yk, n, false, false)
					if err == errEmptySlot {
						continue
					}
					if err != nil {
						return err
					}
					ci.Slots = append(ci.Slots, info)
				}
				return nil
			})
		}
		ci.Err = err
		cards = append(cards, ci)
	}
	return cards, notes, nil
}
