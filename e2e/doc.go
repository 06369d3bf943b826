// Package e2e holds the container fault campaign: a federation of hashfed
// containers, published to and read from by clients in the test process,
// while SIGKILLs, network partitions, SIGSTOPs, restarts and wiped disks hit
// its nodes. Afterwards every node must hold every acknowledged contribution
// exactly once, report the same checkpoint and pass the audit; every
// subscriber must have received every entry once and in order; and the
// history of publishes and reads must be linearizable.
//
// The tests need a Docker engine and are behind the build tag e2e:
//
//	go test -tags e2e -count=1 -timeout 40m ./e2e
//
// docs/FAULTS.md ("The container campaign") says what is injected, what is
// checked, how to replay a run and where a failing run leaves its artifacts.
package e2e
