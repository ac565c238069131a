//go:build !linux

package registry

import "os"

// syncFiles fsyncs each file just written.
func syncFiles(files ...*os.File) error {
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}
