package registry

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// idOf reads a fileID from what stat(2) returned.
func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	}
	return fileID{
		// The conversions are for 32-bit platforms, where some are narrower.
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: int64(st.Size),
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		known: true,
	}
}

// localFS says whether path (statfs(2) follows symbolic links) is on a
// local file system whose stat(2) answers from the file itself. A network file system (NFS, SMB, sshfs through
// FUSE, …) may answer stat from a cache of attributes for up to a minute
// while another machine moved the ref, so stamps are never trusted there.
func localFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	// f_type is 32 bits wide on some platforms (int32 there): compared as
	// uint32, magics with the top bit set (Btrfs, F2FS) match everywhere.
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.F2FS_SUPER_MAGIC, unix.OVERLAYFS_SUPER_MAGIC,
		0x2fc12fc1: // ZFS (not in x/sys)
		return true
	}
	return false
}
