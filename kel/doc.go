// Package kel is the KERI version 1 JSON event model of auths-agent: CESR
// primitives, events and their SAIDs, thresholds, key state and key event log
// validation, and auths' device attestations. It does no I/O.
//
// # What it covers
//
//   - CESR primitives (cesr.go): Ed25519 and P-256 public keys (Verfer),
//     Blake3-256 digests, indexed signatures (Siger) and the -A## attachment
//     group.
//   - Events (event.go): icp, rot, ixn (and parsing of dip, drt) with the
//     exact field order and version string keripy writes, serialization for
//     signing, SAID computation and checks.
//   - Thresholds (threshold.go): simple hex and weighted with exact rational
//     arithmetic.
//   - Key state and validation (state.go, validate.go). A delegator's
//     anchoring seal lives in another KEL, which this package does not
//     see: the registry checks delegations, and [RefuseDelegated]
//     (delegation.go) refuses delegated events where nothing can.
//   - Builders (build.go): events that a caller signs elsewhere; building
//     never signs.
//   - Contributions (contribution.go): the one-line key and next-key
//     digest a member on another machine hands to whoever builds an
//     establishment event.
//   - auths' forms (authsform.go): the threshold forms auths reads with
//     keripy's meaning, required of events that enter a shared registry.
//   - auths device attestations (attestation.go, attestsaid.go,
//     attestjson.go): read as auths reads them, written byte for byte as
//     auths stores them, their device and identity signatures, and the SAID
//     auths anchors.
//
// The CESR codec is hand-written: no maintained Go CESR library exists; the
// subset here is the one keri.md in the project's shared facts describes.
package kel
