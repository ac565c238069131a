// Package registry owns all git I/O of auths-agent: the auths version 1
// registry under refs/auths/registry, written in atomic, verified batches.
//
// # Layout
//
// Each commit of refs/auths/registry holds v1/metadata.json, one folder per
// identity under v1/identities/<p[0:2]>/<p[2:4]>/<prefix>/ (events/ with the
// pretty-printed events and their .attachments.cesr signature groups,
// tip.json, state.json) and one per device under v1/devices/ (the current
// attestation.json and history/ copies), as auths writes them.
//
// # Writing
//
// A [Batch] collects operations: [Batch.Append] for a fully signed event,
// [Batch.StoreAttestation] and [Batch.SupersedeAttestation] for device
// attestations. [Registry.Commit] verifies every operation against the
// current tip (SAIDs, sequence numbers, prior SAIDs, signatures with full
// threshold checks through package kel), then writes the new objects, one
// commit whose trees are rewritten only along the changed paths, and moves
// the ref with git's lock-file protocol under the advisory flock on
// registry.lock that auths also takes. A failing batch writes nothing and
// returns an [*OpError] naming the operation; a ref moved by a foreign
// writer is a [*ConflictError] ([ErrConflict]); [Registry.CommitRetry]
// retries batches that are still valid on the new tip.
//
// # Reading
//
// [Registry.Snapshot] pins one commit; [Snapshot.Tip], [Snapshot.KeyState]
// (state.json when it was validated against the tip, else a replay),
// [Snapshot.KEL], [Snapshot.KELStream], [Snapshot.Verify],
// [Snapshot.Prefixes] and [Snapshot.Attestation] read through it. Content
// that does not follow the layout is reported as a [*CorruptError] with its
// path ([ErrCorrupt]) and is never overwritten.
package registry
