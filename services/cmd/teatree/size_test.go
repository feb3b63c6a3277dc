package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "512MiB": 512 << 20, "8GB": 8e9, "2 GiB": 2 << 30, "1.5KiB": 1536, "10B": 10} {
		var b byteSize
		require.NoError(t, b.Set(in), in)
		require.Equal(t, want, int64(b), in)
	}
	for _, in := range []string{"", "lots", "-1GB", "5XB"} {
		var b byteSize
		require.Error(t, b.Set(in), in)
	}
}
