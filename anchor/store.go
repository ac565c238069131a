package anchor

import (
	"context"

	"github.com/auths-dev/auths-agent/registry"
)

// Store is what an Anchorer needs of a registry: consistent snapshots to
// read tips and key states from, atomic batch commits, and the pending
// refs that hold proposals in escrow. *registry.Registry is the store of a
// local repository; a registry reached through a remote can be another.
type Store interface {
	Snapshot() (*registry.Snapshot, error)
	CommitRetry(ctx context.Context, b *registry.Batch, attempts int) (*registry.CommitResult, error)
	PutPending(ctx context.Context, id registry.PendingID, files registry.PendingFiles) (*registry.PutResult, error)
	ReadPending(id registry.PendingID) (registry.PendingFiles, error)
	ListPending() ([]registry.PendingID, error)
	DeletePending(ctx context.Context, id registry.PendingID) error
}

var _ Store = (*registry.Registry)(nil)
