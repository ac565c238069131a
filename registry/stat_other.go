//go:build !linux

package registry

import "os"

// idOf reads a fileID from what stat(2) returned. Outside Linux it is
// never known, so Unchanged always says false and the ref is read.
func idOf(fi os.FileInfo) fileID {
	return fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// localFS: outside Linux no file system is trusted (see stat_linux.go).
func localFS(string) bool { return false }
