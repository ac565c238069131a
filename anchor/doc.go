// Package anchor writes KERI events that need several controllers'
// signatures: it stages the unsigned event, collects indexed signatures
// from any source, folds them into one fully signed event once the
// thresholds are met, and commits that event together with the rest of
// its change (device attestations) as one registry batch, one commit.
//
// # Flow
//
//	a := anchor.New(reg)                                  // reg: a Store, e.g. *registry.Registry
//	p, err := a.Stage(ctx, prefix, anchor.Change{Attestations: ...})
//	_, err = anchor.Sign(ctx, p, signers)                // hsm.Signer values, concurrently
//	if !p.Complete() { err = a.Save(ctx, p) }            // escrow: wait for more signatures
//	res, err := a.Commit(ctx, p)                         // fold, verify, one commit
//
// [Anchorer.Stage] builds an interaction event carrying seals;
// [Anchorer.Incept] and [Anchorer.Rotate] build inceptions and rotations
// with the same machinery. A [Proposal] knows the exact bytes to sign, its
// SAID, its sequence number and prior SAID, the signing keys with their
// indexes (and, for a rotation, each key's position in the prior next-key
// list, so signatures get both indexes where they differ), and the
// thresholds. [Proposal.Add] verifies every signature before keeping it.
//
// # Escrow
//
// A proposal that is not fully signed can be saved with [Anchorer.Save]
// under refs/auths-agent/pending/<prefix>/<said> in the registry's repository
// (one file per signature, merged by union) and found again by another
// process with [Anchorer.List] and [Anchorer.Load]. Proposals expire
// ([DefaultTTL], one hour, as keripy's partial-signature escrow) and are
// removed when committed or found stale. Only those outcomes remove a
// proposal: any other error (a failed read while another process merges
// packs, a full disk) leaves its pending ref and signatures as they were.
//
// # Registry
//
// An Anchorer reads and writes through a [Store]: snapshots, batch
// commits and the pending refs. *registry.Registry is the store of a local
// repository.
//
// # Remotes
//
// [Anchorer.Pull], [Anchorer.Push] and [Anchorer.CommitPush] exchange the
// registry and the proposals with a git remote through package registry;
// [Anchorer.CheckPending] judges what a remote serves (every signature
// verified again) before it is merged.
//
// # Errors
//
// Callers branch with errors.Is on [ErrStale], [ErrExpired],
// [ErrIncomplete], [ErrCommitted], the signature refusals [ErrOtherEvent],
// [ErrWrongIndex], [ErrBadSignature], and the signer refusals
// [ErrSignerNotInKeys], [ErrDuplicateSigner].
//
// The package never prompts, never exits, takes a context everywhere it may
// wait, and reads time from an injected clock ([WithClock]), so a
// long-running agent can use it.
package anchor
