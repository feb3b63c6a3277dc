package blob

import "strconv"

// Snapshot layout (CONTRACT.md, "Snapshots").
const (
	DuckDBFile   = "model.duckdb"
	ManifestFile = "manifest.json"
)

// ModelPrefix is models/<model>.
func ModelPrefix(model string) string { return "models/" + model }

// VersionPrefix is models/<model>/v<version>.
func VersionPrefix(model string, version uint64) string {
	return ModelPrefix(model) + "/" + VersionDir(version)
}

// VersionDir is v<version>.
func VersionDir(version uint64) string { return "v" + strconv.FormatUint(version, 10) }

// ParseVersionDir returns the version of a folder named v<version>.
func ParseVersionDir(name string) (uint64, bool) {
	// Only the form VersionDir writes: no sign, no leading zero.
	if len(name) < 2 || name[0] != 'v' || name[1] < '1' || name[1] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(name[1:], 10, 64)
	return v, err == nil && v > 0
}

// Key is models/<model>/v<version>/<file>.
func Key(model string, version uint64, file string) string {
	return VersionPrefix(model, version) + "/" + file
}

// ParquetFile is <table>.parquet.
func ParquetFile(table string) string { return table + ".parquet" }

// UploadPrefix is uploads/<model>, where bodies too large for one message
// wait for the model's db-manager.
func UploadPrefix(model string) string { return "uploads/" + model }

// UploadKey is uploads/<model>/<request id>.
func UploadKey(model, requestID string) string { return UploadPrefix(model) + "/" + requestID }

// CallResultKey is calls/<model>/<call id>/<attempt>, where attempt
// attempt of a compute call writes its result.
func CallResultKey(model, callID string, attempt int) string {
	return "calls/" + model + "/" + callID + "/" + strconv.Itoa(attempt)
}
