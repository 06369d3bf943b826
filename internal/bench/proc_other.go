//go:build !linux

package bench

import (
	"errors"
	"os/exec"
)

func setParentDeathSignal(*exec.Cmd) {}

func selfCPU() float64 { return 0 }

func procCPU(int) (float64, error) {
	return 0, errors.New("process CPU time is read from /proc, on Linux only")
}

func machineCPU() float64 { return 0 }
