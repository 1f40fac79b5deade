package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestFilesAreOrderedAndNamesChecked(t *testing.T) {
	good := Set{FS: fstest.MapFS{
		"m/0010_later.sql": {Data: []byte("SELECT 10")},
		"m/0002_first.sql": {Data: []byte("SELECT 2")},
	}, Dir: "m"}
	files, err := good.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Version != 2 || files[1].Version != 10 || files[0].SQL != "SELECT 2" {
		t.Fatalf("files out of order or misread: %+v", files)
	}
	if files[0].Checksum() == files[1].Checksum() || len(files[0].Checksum()) != 64 {
		t.Fatalf("checksums: %q %q", files[0].Checksum(), files[1].Checksum())
	}

	for _, tc := range []struct {
		fsys fstest.MapFS
		want string
	}{
		{fstest.MapFS{"m/0001.sql": {}}, "name is not NNNN_description.sql"},
		{fstest.MapFS{"m/0001_a.txt": {}}, "name is not NNNN_description.sql"},
		{fstest.MapFS{"m/first_table.sql": {}}, "does not start with a positive number"},
		{fstest.MapFS{"m/0000_zero.sql": {}}, "does not start with a positive number"},
		{fstest.MapFS{"m/0001_a.sql": {}, "m/001_b.sql": {}}, "version 1 already used"},
	} {
		if _, err := (Set{FS: tc.fsys, Dir: "m"}).Files(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.fsys, err, tc.want)
		}
	}
}
