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
// threshold checks through package kel; thresholds only in forms auths
// reads alike; every attestation an auths kel.Attestation signed by its
// device and anchored by an event of its issuer in the same batch, stored
// as auths serializes it), then writes the new objects, one
// commit whose trees are rewritten only along the changed paths, and moves
// the ref with git's lock-file protocol under the advisory flock on
// registry.lock that auths also takes. A failing batch writes nothing and
// returns an [*OpError] naming the operation; a ref moved by a foreign
// writer is a [*ConflictError] ([ErrConflict]); [Registry.CommitRetry]
// retries batches that are still valid on the new tip.
//
// # Objects
//
// The new objects of a commit (or of a pending proposal's update) are
// written as one pack with its index in objects/pack/, whole objects
// without deltas: both under temporary names, flushed to disk (fdatasync
// of each on Linux, fsync elsewhere; never syncfs, which would make a
// commit wait for every writer of the file system), renamed into place
// pack first and index last as git does, the directory flushed. Before
// its rename the pack gets a pack-<id>.keep file, as git's receive-pack
// does: its objects are unreachable until the ref moves, and git repack
// -a -d or git gc --prune=now running meanwhile would delete them. Then
// the ref moves (git's lock-file protocol) and its directory is flushed
// before the commit is reported; the .keep goes once the ref has moved or
// the compare-and-swap failed. A crash leaves the old or the new commit;
// what it may leave behind is auths_tmp_* files, a pack without its index
// or a .keep of ours, removed by a later merge, or a ref lock, which only
// [Registry.Unlock] removes: like git, a writer never breaks a lock file
// (it waits [WithRefLockWait], then fails with a [*LockError]).
//
// One pack per commit would slow reads down as they pile up: when a commit
// finds more than 32 packs of its own ([WithMaxPacks]) it merges, still
// under the flock, the packs `git repack --geometric=2` would pick by
// object count (the small ones, and larger ones as long as the packs left
// would not at least double from one to the next), so each object is
// rewritten a logarithmic number of times and never the whole registry per
// merge. Objects are copied byte for byte (CRC-32 checked). The merged pack
// is in place before the packs it replaces are removed, index first. Only
// packs this package wrote are merged (their ids are recorded in
// <gitdir>/auths-agent-packs), and none that a multi-pack-index lists or
// that has a .keep, .promisor, .mtimes or .bitmap file: the rest of the
// repository is git's to maintain (git gc, git maintenance). Loose objects
// are left alone.
//
// Reads list packs by their index, as git does, and keep each listed pack
// open, so a pack another process removes stays readable until the next
// listing. An object found neither in a listed pack nor loose makes the
// reader list the packs again and retry before it reports the object
// missing: that is how packs written or merged by other processes are
// seen.
//
// Hand-written here, and why: the pack writer (go-git's packfile encoder
// compresses at the default level, needs the objects in a storer and does
// not hand back the offsets and CRCs the index needs; go-git's idxfile
// writes the index) and the object reader (go-git's filesystem object
// storage lists packs by their .pack file, fails every lookup while a pack
// has no index yet, reopens merged-away packs by name and is not safe for
// concurrent use). go-git still encodes and decodes trees and commits.
//
// # Reading
//
// [Registry.Snapshot] pins one commit; [Snapshot.Tip], [Snapshot.KeyState]
// (state.json when it was validated against the tip, else a replay),
// [Snapshot.KEL], [Snapshot.KELStream], [Snapshot.Verify],
// [Snapshot.Prefixes] and [Snapshot.Attestation] read through it. Content
// that does not follow the layout is reported as a [*CorruptError] with its
// path ([ErrCorrupt]) and is never overwritten.
//
// # Proposals and remotes
//
// Pending proposals live under refs/auths-agent/pending/<prefix>/<said>
// ([Registry.PutPending], [Registry.ReadPending], [Registry.ListPending],
// [Registry.DeletePending]); two histories of one proposal join in a merge
// commit. [Registry.Pull] fetches a remote's registry and proposals with
// go-git, verifies every new registry commit (KELs replayed from their
// events, attestations anchored) before the local ref fast-forwards, and
// merges proposals after a caller's [CheckPending]; [Registry.Push],
// [Registry.PushRetry] and [Registry.CommitPush] send them back, only ever
// as fast-forwards, and [Registry.PushDropping] deletes the remote's
// proposals a caller's [DeadPending] finds dead, each a compare-and-delete
// on the commit judged.
package registry
