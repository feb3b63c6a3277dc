package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckExposure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name           string
		auth, insecure bool
		http, nats     string
		refused        string // the flag named in the error; empty: allowed
	}{
		{name: "loopback", http: "127.0.0.1:8080", nats: "127.0.0.1:4222"},
		{name: "other loopback address", http: "127.0.0.2:8080", nats: "127.9.9.9:4222"},
		{name: "localhost and ::1", http: "localhost:8080", nats: "[::1]:4222"},
		{name: "every interface", http: "0.0.0.0:8080", nats: "127.0.0.1:4222", refused: "--http"},
		{name: "no host is every interface", http: ":8080", nats: "127.0.0.1:4222", refused: "--http"},
		{name: "IPv6 every interface", http: "127.0.0.1:8080", nats: "[::]:4222", refused: "--nats"},
		{name: "a LAN address", http: "127.0.0.1:8080", nats: "192.168.1.5:4222", refused: "--nats"},
		{name: "a host name", http: "teatree.example:8080", nats: "127.0.0.1:4222", refused: "--http"},
		{name: "auth allows any", auth: true, http: "0.0.0.0:8080", nats: "0.0.0.0:4222"},
		{name: "insecure allows any", insecure: true, http: "0.0.0.0:8080", nats: "10.0.0.1:4222"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := checkExposure(c.auth, c.insecure, listen{"--http", c.http}, listen{"--nats", c.nats})
			if c.refused == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.refused+" ")
			require.ErrorContains(t, err, "--auth FILE")
			require.ErrorContains(t, err, "--insecure")
		})
	}
}
