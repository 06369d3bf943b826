package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadCursor reads fuzzed subscriber cursor files: a cursor that loads
// is an entry number, and saving it writes a file that loads back the same.
func FuzzLoadCursor(f *testing.F) {
	for _, s := range []string{"0\n", "42\n", "9223372036854775807\n", " 7 ", "-1\n", "+5", "0x10", "", "1\n2\n"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	in, out := filepath.Join(dir, "cursor"), filepath.Join(dir, "saved")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(in, b, 0o600); err != nil {
			t.Fatal(err)
		}
		n, err := loadCursor(in)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("loadCursor(%q) = %d, a negative entry number", b, n)
		}
		if err := saveCursor(out, n); err != nil {
			t.Fatal(err)
		}
		if again, err := loadCursor(out); err != nil || again != n {
			t.Fatalf("cursor %d saved and loaded is %d, %v", n, again, err)
		}
	})
}
