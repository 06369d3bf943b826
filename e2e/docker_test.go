//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// dockerTimeout bounds one docker command. `docker restart` of a node that
// ignores SIGTERM takes its stop timeout, well below this.
const dockerTimeout = 2 * time.Minute

// docker runs the docker CLI and returns its combined output. The error
// names the command and carries the output.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// dockerAvailable reports why the Docker engine cannot be used, or nil.
func dockerAvailable() error {
	if _, err := exec.LookPath("docker"); err != nil {
		return err
	}
	_, err := docker(context.Background(), "info", "--format", "{{.ServerVersion}}")
	return err
}

// Every docker object the campaign creates carries this label, with the
// run's name as its value.
const labelKey = "io.hashfed.e2e"

// API and Raft ports inside every container.
const (
	apiPort  = 7400
	raftPort = 7401
)

// createNetwork creates the run's bridge network on a /24 of 172.28.0.0/16
// that no other docker network uses, and returns its first three octets.
func (c *cluster) createNetwork(ctx context.Context) error {
	used := map[string]bool{}
	if out, err := docker(ctx, "network", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			s, err := docker(ctx, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", id)
			if err == nil {
				for _, sub := range strings.Fields(s) {
					used[sub] = true
				}
			}
		}
	}
	// Start from a spot that depends on the run's name, so concurrent runs
	// rarely race for the same subnet; a lost race fails the create, and the
	// next subnet is tried.
	start := int(c.name[len(c.name)-2]) * 7
	var lastErr error
	for i := range 256 {
		prefix := fmt.Sprintf("172.28.%d", (start+i)%256)
		if used[prefix+".0/24"] {
			continue
		}
		_, err := docker(ctx, "network", "create", "--driver", "bridge", "--label", labelKey+"="+c.name,
			"--subnet", prefix+".0/24", c.network)
		if err == nil {
			c.subnet = prefix
			return nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "overlap") {
			return err
		}
	}
	return fmt.Errorf("no free /24 in 172.28.0.0/16 for the test network: %w", lastErr)
}

// runContainer creates and starts n's container from its configuration
// directory and its volume, which it creates if it does not exist.
func (c *cluster) runContainer(ctx context.Context, n *node) error {
	if _, err := docker(ctx, "volume", "create", "--label", labelKey+"="+c.name, n.volume); err != nil {
		return err
	}
	_, err := docker(ctx, "run", "-d",
		"--name", n.container,
		"--hostname", n.id,
		"--label", labelKey+"="+c.name,
		"--network", c.network, "--ip", n.ip,
		"--stop-timeout", "10",
		"-v", n.volume+":/var/lib/hashfed",
		"-v", n.conf+":/etc/hashfed:ro",
		c.image)
	return err
}

// kill sends sig (KILL, STOP, CONT, TERM) to n's process.
func (c *cluster) kill(ctx context.Context, n *node, sig string) error {
	_, err := docker(ctx, "kill", "-s", sig, n.container)
	return err
}

// start starts n's stopped container.
func (c *cluster) start(ctx context.Context, n *node) error {
	_, err := docker(ctx, "start", n.container)
	return err
}

// disconnect cuts n off the network: it keeps running, reaching and reached
// by nobody.
func (c *cluster) disconnect(ctx context.Context, n *node) error {
	_, err := docker(ctx, "network", "disconnect", c.network, n.container)
	return err
}

// connect puts n back on the network with its own address.
func (c *cluster) connect(ctx context.Context, n *node) error {
	_, err := docker(ctx, "network", "connect", "--ip", n.ip, c.network, n.container)
	return err
}

// containerState returns docker's view of n: "running", "paused", "exited"...
// and whether it is attached to the network.
func (c *cluster) containerState(ctx context.Context, n *node) (state string, attached bool, err error) {
	out, err := docker(ctx, "inspect", "-f", "{{.State.Status}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", n.container)
	if err != nil {
		return "", false, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", false, fmt.Errorf("docker inspect %s: empty answer", n.container)
	}
	for _, net := range f[1:] {
		attached = attached || net == c.network
	}
	return f[0], attached, nil
}

// saveLogs appends n's container log to logs/<node>.log, marked with the
// container's generation, so logs survive a container's replacement.
func (c *cluster) saveLogs(ctx context.Context, n *node) error {
	cmd := exec.CommandContext(ctx, "docker", "logs", "-t", n.container)
	out, err := cmd.CombinedOutput()
	f, ferr := os.OpenFile(filepath.Join(c.logs, n.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if ferr != nil {
		return ferr
	}
	defer f.Close()
	fmt.Fprintf(f, "===== container %s, generation %d =====\n", n.container, n.generation)
	f.Write(out)
	if err != nil {
		fmt.Fprintf(f, "===== docker logs failed: %v =====\n", err)
	}
	return nil
}

// replace removes n's container and volume, wiping its data, and starts a
// new container on a fresh volume. The old container's log is saved first.
func (c *cluster) replace(ctx context.Context, n *node) error {
	if err := c.saveLogs(ctx, n); err != nil {
		return err
	}
	if _, err := docker(ctx, "rm", "-f", n.container); err != nil {
		return err
	}
	if _, err := docker(ctx, "volume", "rm", n.volume); err != nil {
		return err
	}
	n.generation++
	return c.runContainer(ctx, n)
}

// removeAll removes every container, volume and the network of the run.
// It saves the containers' logs first if saveLogs is set. Errors are
// returned joined, after trying everything.
func (c *cluster) removeAll(saveLogs bool) error {
	ctx := context.Background()
	var errs []string
	for _, n := range c.nodes {
		if saveLogs {
			if err := c.saveLogs(ctx, n); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if out, err := docker(ctx, "ps", "-aq", "--filter", "label="+labelKey+"="+c.name); err == nil && strings.TrimSpace(out) != "" {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, n := range c.nodes {
		if _, err := docker(ctx, "volume", "rm", "-f", n.volume); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if c.subnet != "" {
		if _, err := docker(ctx, "network", "rm", c.network); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleaning up: %s", strings.Join(errs, "; "))
	}
	return nil
}
