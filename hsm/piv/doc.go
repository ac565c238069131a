// Package piv keeps auths-agent's controller keys on YubiKeys over PIV,
// through github.com/go-piv/piv-go/v2 (cgo, libpcsclite, a running pcscd).
//
// # Cards
//
// A [Provider] owns the cards of the process: build one in main, pass it
// down, Close it at the end. It opens a card by serial on first use and
// holds it exclusively; one lock per card serializes all use of that card,
// while different cards work in parallel. A card that was removed (or whose
// connection broke) is opened again on the next call; the errors in between
// name the card ("card 10000001: …") and match hsm.ErrTokenAbsent. A panic
// inside piv-go on a malformed card answer becomes an error matching
// [ErrCardPanic].
//
// # Keys
//
// Keys are named by URIs (see hsm.PIVURI):
//
//	piv:serial=12345678;slot=9c?pin-source=env:YK_PIN
//
// [Provider.Signer] returns an hsm.Signer for the key in a slot: P-256 on
// every YubiKey 4/5, Ed25519 on firmware 5.7 and newer. SignKERI returns raw
// r‖s for P-256 and the 64-byte signature for Ed25519. [Provider.Generate]
// makes a key with chosen PIN and touch policies; [Provider.Key] reads a
// slot back (metadata on 5.3+, else the certificate stored beside the key)
// and can add the card's attestation; [Provider.Cards] lists the cards.
//
// # PINs and touches
//
// The PIN comes from the URI's PIN attributes or from the prompt given in
// [Options]; it is asked for only when the card needs it and is never kept,
// logged or put in an error. A wrong PIN is reported with the tries left
// ([hsm.WrongPINError]) and that PIN is not sent again; a blocked PIN
// (hsm.ErrPINBlocked) needs the PUK: [Provider.Unblock]. When a key's touch
// policy asks for a touch, the [TouchNotifier] hears about it before the
// card starts waiting.
//
// # Contexts
//
// piv-go calls cannot be interrupted. Every operation checks its context
// before it takes the card, while it waits for the card's lock, and after
// the card answered.
package piv
