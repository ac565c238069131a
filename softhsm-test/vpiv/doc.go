// Package vpiv is a virtual YubiKey PIV card for tests: the card logic,
// driven one APDU at a time, and a client of vsmartcard's vpcd that puts the
// card behind a real pcscd. It is test tooling; the agent never imports it.
//
// # What it answers
//
// What piv-go v2 and Yubico's ykcs11 send (traces of both against real
// YubiKeys are in the workspace's spec/traces, beside the project):
// SELECT of the PIV application, GET VERSION, GET SERIAL, GET METADATA (key
// slots, 9b, f9, PIN 80 and PUK 81), VERIFY (status query, PIN attempt,
// reset), CHANGE REFERENCE and RESET RETRY COUNTER (PIN and PUK, three tries
// each, counted per card), management-key mutual authentication (3DES, and
// AES from firmware 5.4) and SET MANAGEMENT KEY, GENERATE ASYMMETRIC and
// IMPORT KEY (P-256, P-384; Ed25519 and X25519 from firmware 5.7; no RSA),
// GENERAL AUTHENTICATE (ECDSA over a digest, Ed25519 over the message, ECDH),
// GET DATA and PUT DATA for 5fc1xx objects, the discovery object and the
// attestation certificate 5fff01, ATTEST, YubiKey RESET and SET PIN RETRIES;
// command chaining (CLA 10) and response chaining (61xx, GET RESPONSE).
// PIN policies never, once (until reset or power off) and always (one
// VERIFY per use), touch policies with a configurable touch delay (cached:
// 15 s), and a per-signature latency. Malformed APDUs get ISO 7816 status
// words; Transmit never panics.
//
// # Attestation
//
// A new card creates a test CA and an attestation key (slot f9) whose
// certificate the CA issues; [Card.CACertificatePEM] is the root to pass to
// piv.Verifier. Attestation certificates carry Yubico's extensions
// (firmware, serial, PIN and touch policy, form factor).
//
// # State
//
// Keys, counters, the management key and data objects live in a JSON file
// written atomically after every change ([Config.StatePath]); PIN and PUK are
// kept as salted hashes, private keys in the clear.
//
// # The rig
//
// softhsm-test/vpiv-up starts pcscd, vpcd readers and cmd/vpiv-card
// processes in a private namespace; see softhsm-test/vpiv-README.md.
package vpiv
