// Package agent is the custody of controller and SSH keys in a long-running
// process: which keys it holds, what each may sign, and in which order the
// tokens are used. It speaks no wire protocol (package socket does); its
// methods are the operations a client may ask for.
//
// # Keys and policy
//
// A [Config] lists keys by URI (pkcs11: or piv:). A controller key (KERI
// use) signs events of the identities whose key lists hold it, or only of
// the identities its config entry names. An SSH key answers ssh-agent sign
// requests. A controller key is an SSH key only when its config entry says
// so: SSH's Ed25519 and ECDSA signatures are the schemes KERI uses, so a key
// that serves both must never sign a KERI event through the SSH path, and
// [Agent.SignSSH] signs only data that parses as an SSH user-authentication
// request or an SSHSIG blob.
//
// Keys open lazily, on first use, through an [Opener] ([TokenOpener] holds
// one PKCS#11 provider per module and one PIV provider). A key whose token
// went away is opened again on the next request.
//
// # KERI events
//
// [Agent.SignEvent] parses the event, recomputes its SAID, checks that it is
// the valid next event of its identity in the registry (or, for an
// inception, that its key list holds keys the agent has), applies the
// policy and returns the indexed signatures of every held key in the key
// list, signed concurrently across tokens. Anything else is a
// [*RefusedError] and nothing is signed. [Agent.Anchor] runs the flows of
// package anchor inside the agent, queuing anchors of one identity.
// [Agent.Pull], [Agent.Push] and [Agent.PendingSignRemote] exchange the
// agent's registry and proposals with git remotes (anchor and registry do
// the work), with the credentials [Options].RemoteAuth gives.
//
// The agent never signs two different events at one sequence number of an
// identity (duplicity by its own keys): it remembers, per identity, the
// SAID it signed at each sequence number above the registry's tip, in
// bounded memory (turns.go), and refuses a different event there with
// [ErrDuplicity].
//
// # Next keys
//
// [Agent.NextKeys] makes the next keys of an inception or rotation beside
// held controller keys on their tokens ([NextPKCS11], [NextPIV]; the CLI's
// direct path uses the same functions), reusing one an earlier attempt made
// and no identity or pending proposal uses (on PIV, only one whose slot
// certificate marks it as NextPIV's). id contribute asks for one next key
// the same way, checked as an inception. The agent holds the keys it made with the policy of
// the key beside them, and finds next keys on its tokens again after a
// restart (idkeys.go: PKCS#11 labels BASE-nextN, and on PIV only keys whose
// slot certificate marks them as NextPIV's): nothing is written to the
// config.
//
// # Scheduling
//
// Each token does one operation at a time; different tokens work in
// parallel. A request whose context ends (the client went away or passed its
// deadline) leaves the queue at once; an operation already on the device
// completes and its result is discarded.
//
// A PIV card may wait for a touch ([TouchWaits] says when it starts). A
// touch that does not come within [Options.TouchTimeout] ends the request
// with a [*TouchTimeoutError], recorded as a refusal; the card's call keeps
// the card until it ends, and until then every request for the card gets a
// [*BusyError] at once instead of queuing behind a touch that may never
// come, recorded as a refusal too (the audit trail has the record of each
// signature before its token is asked).
//
// # The outside world
//
// Logging (log/slog, never PINs or key material), PIN prompts and touch
// notices (through the Opener), the audit sink and the clock are passed in
// [Options]; the package has no global state.
package agent
