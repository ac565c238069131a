package registry

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes the files just written durable with one syncfs(2) of the
// file system holding them: measured cheaper here than an fsync of each
// (one cache flush for the pack and its index).
func syncFiles(files ...*os.File) error {
	return unix.Syncfs(int(files[0].Fd()))
}
