package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Checkpoints are published by the leader: every CheckpointInterval, if the
// ledger grew, it asks every voting node of the genesis to cosign the new
// (size, root), and once a majority of voting orgs has signed it commits the
// cosigned note through Raft. Each node signs only what its own ledger
// holds, so a checkpoint proves that a majority of orgs hold that history.

// cosignTimeout bounds one node's answer to a cosign request.
const cosignTimeout = 3 * time.Second

// Cosign signs a checkpoint body if this node's ledger agrees with it.
func (s *clusterService) Cosign(ctx context.Context, req *hashfedv1.CosignRequest) (*hashfedv1.CosignResponse, error) {
	body := req.GetCheckpoint()
	cp, err := ledger.ParseCheckpoint(body)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint body: %v", err)
	}
	if !bytes.Equal(cp.Marshal(), body) {
		return nil, status.Error(codes.InvalidArgument, "checkpoint body has extension lines; hashfed cosigns plain checkpoints only")
	}
	g := s.n.state.Genesis()
	if cp.Origin != g.Federation {
		return nil, status.Errorf(codes.InvalidArgument, "checkpoint origin %q is not this federation (%q)", cp.Origin, g.Federation)
	}
	// The leader may be a little ahead of this node: wait for the entries.
	ctx, cancel := context.WithTimeout(ctx, cosignTimeout)
	defer cancel()
	for s.n.state.Size() < cp.Size {
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.FailedPrecondition, "this node holds %d entries, fewer than the checkpoint's %d", s.n.state.Size(), cp.Size)
		case <-s.n.state.Changed():
		}
	}
	mine, err := s.n.state.RootAt(cp.Size)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "computing root: %v", err)
	}
	if mine.Hash != cp.Hash {
		s.n.log.Error("refused to cosign a checkpoint that contradicts this node's ledger", "size", cp.Size, "proposed", cp.Hash.String(), "ours", mine.Hash.String(), "by", callerFrom(ctx).Identity.String())
		return nil, status.Errorf(codes.FailedPrecondition, "checkpoint root %s at size %d differs from this node's %s", cp.Hash, cp.Size, mine.Hash)
	}
	sigs, err := signatureLines(body, s.n.signer)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "signing: %v", err)
	}
	return &hashfedv1.CosignResponse{Signatures: sigs}, nil
}

// signatureLines signs body as a note and returns only the signature lines.
func signatureLines(body []byte, signer note.Signer) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return nil, err
	}
	return msg[len(body)+1:], nil
}

// A cosigners holds gRPC connections to the other voting nodes.
type cosigners struct {
	n     *Node
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (c *cosigners) conn(gn *federation.Node) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[gn.ID]; cc != nil {
		return cc, nil
	}
	cc, err := grpc.NewClient(gn.APIAddress, grpc.WithTransportCredentials(c.n.peerCreds))
	if err != nil {
		return nil, err
	}
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	c.conns[gn.ID] = cc
	return cc, nil
}

func (c *cosigners) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.Close()
	}
	c.conns = nil
}

// collect asks every voting node for its signature over body, in parallel,
// and returns the lines of those that signed, in genesis order.
func (c *cosigners) collect(ctx context.Context, body []byte) []byte {
	g := c.n.state.Genesis()
	var voters []*federation.Node
	for i := range g.Nodes {
		if g.Nodes[i].Voter && c.n.state.Member(g.Nodes[i].Org) != nil {
			voters = append(voters, &g.Nodes[i])
		}
	}
	lines := make([][]byte, len(voters))
	var wg sync.WaitGroup
	for i, gn := range voters {
		if gn.ID == c.n.cfg.NodeID {
			l, err := signatureLines(body, c.n.signer)
			if err == nil {
				lines[i] = l
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := c.conn(gn)
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(ctx, cosignTimeout)
			defer cancel()
			res, err := hashfedv1.NewClusterServiceClient(cc).Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: body})
			if err != nil {
				c.n.log.Debug("cosign refused or unreachable", "node", gn.ID, "err", err)
				return
			}
			lines[i] = res.GetSignatures()
		}()
	}
	wg.Wait()
	return slices.Concat(lines...)
}

// checkpointLoop publishes checkpoints while this node leads.
func (n *Node) checkpointLoop(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		if !n.cons.IsLeader() {
			continue
		}
		n.enforceMembership()
		ctx, cancel := context.WithTimeout(context.Background(), 2*cosignTimeout)
		// Close waits for this loop: stopping the node ends the attempt,
		// which would otherwise wait out its timeout, retrying a commit
		// through a Raft already shut down.
		go func() {
			select {
			case <-n.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		size, err := n.publishCheckpoint(ctx)
		cancel()
		select {
		case <-n.stop:
			return
		default:
		}
		switch {
		case err != nil && time.Since(lastWarn) > 10*time.Second:
			lastWarn = time.Now()
			n.log.Warn("checkpoint not published", "err", err)
		case err == nil && size > 0:
			n.log.Debug("checkpoint published", "size", size)
		}
	}
}

// enforceMembership runs on the leader: genesis nodes of orgs that governance
// removed leave the Raft configuration, and a leader whose own org was
// removed hands leadership to a member's node. (The other nodes already
// refuse the removed org's new connections, so such a leader could not
// gather cosignatures.)
func (n *Node) enforceMembership() {
	if n.state.Member(n.id.Org) == nil {
		if err := n.cons.TransferLeadership(); err != nil {
			n.log.Warn("handing over leadership after this node's org was removed", "err", err)
		}
		return
	}
	st, err := n.cons.Status()
	if err != nil {
		return
	}
	g := n.state.Genesis()
	for _, m := range st.Members {
		gn := g.Node(m.ID)
		if gn == nil || n.state.Member(gn.Org) != nil {
			continue
		}
		if err := n.cons.RemoveServer(m.ID); err != nil {
			n.log.Warn("removing a removed org's node from raft", "node", m.ID, "err", err)
			continue
		}
		n.log.Info("removed a removed org's node from raft", "node", m.ID, "org", gn.Org)
	}
}

// errNoQuorum means too few voting orgs cosigned.
var errNoQuorum = errors.New("too few voting orgs cosigned")

// publishCheckpoint cosigns and commits a checkpoint of the current ledger
// if it grew since the last one. It returns the size published, or 0.
func (n *Node) publishCheckpoint(ctx context.Context) (int64, error) {
	size := n.state.Size()
	if _, last := n.state.LatestCheckpoint(); size <= last {
		return 0, nil
	}
	cp, err := n.state.RootAt(size)
	if err != nil {
		return 0, err
	}
	body := cp.Marshal()
	signed := append(append(slices.Clone(body), '\n'), n.cosigners.collect(ctx, body)...)
	if err := n.state.CheckCheckpoint(signed); err != nil {
		return 0, fmt.Errorf("%w: %w", errNoQuorum, err)
	}
	if _, err := n.commit(ctx, &hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: signed}}); err != nil {
		if federation.CodeOf(err) == federation.CodeAlreadyExists {
			return 0, nil // another leader published it first
		}
		return 0, err
	}
	return size, nil
}
