// Command slowfs is a test tool: it mounts a FUSE loopback of a backing directory whose every operation first waits
// for a configurable delay and, while "hung", until it is resumed. Tests use it to give Berth's filesystem storage a
// slow or stuck volume. It is controlled over HTTP on a loopback address:
//
//	POST /delay?ms=1.5   set the added latency per operation (float milliseconds; 0 turns it off)
//	POST /hang           block every new operation (and those already waiting) until /resume
//	POST /resume         let blocked operations go on
//	GET  /stats          operation counts, operations blocked now, delay and hang state (JSON)
//
// Once the mount is ready it prints one line {"control":"127.0.0.1:PORT","mount":"/abs/path"} on stdout. On SIGTERM
// or SIGINT it resumes, unmounts (lazily if the mount stays busy) and exits 0. It must run as root (it mounts with
// mount(2) itself, no fusermount).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// gate is what every operation passes through: the hang gate, then the delay.
type gate struct {
	delay   atomic.Int64 // nanoseconds
	blocked atomic.Int64 // operations waiting at the hang gate now
	mu      sync.Mutex
	hold    chan struct{} // non-nil while hung; closed by resume
	counts  map[string]*atomic.Uint64
}

func newGate(delay time.Duration) *gate {
	g := &gate{counts: map[string]*atomic.Uint64{}}
	for _, op := range opNames {
		g.counts[op] = new(atomic.Uint64)
	}
	g.delay.Store(int64(delay))
	return g
}

func (g *gate) hang() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold == nil {
		g.hold = make(chan struct{})
	}
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
}

func (g *gate) hung() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hold != nil
}

// wait counts op, then holds it while hung and for the delay. It returns false when the kernel interrupted the
// request (the caller then answers EINTR), so a process killed while waiting on the mount is not stuck with it.
func (g *gate) wait(op string, cancel <-chan struct{}) bool {
	g.counts[op].Add(1)
	g.mu.Lock()
	hold := g.hold
	g.mu.Unlock()
	if hold != nil {
		g.blocked.Add(1)
		select {
		case <-hold:
			g.blocked.Add(-1)
		case <-cancel:
			g.blocked.Add(-1)
			return false
		}
	}
	if d := time.Duration(g.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-cancel:
			return false
		}
	}
	return true
}

type stats struct {
	DelayMs float64           `json:"delayMs"`
	Hung    bool              `json:"hung"`
	Blocked int64             `json:"blocked"`
	Total   uint64            `json:"total"`
	Ops     map[string]uint64 `json:"ops"`
}

func (g *gate) stats() stats {
	s := stats{
		DelayMs: float64(g.delay.Load()) / float64(time.Millisecond),
		Hung:    g.hung(),
		Blocked: g.blocked.Load(),
		Ops:     map[string]uint64{},
	}
	for op, c := range g.counts {
		if n := c.Load(); n > 0 {
			s.Ops[op] = n
			s.Total += n
		}
	}
	return s
}

var opNames = func() []string {
	ops := []string{
		"Lookup", "GetAttr", "SetAttr", "Mknod", "Mkdir", "Unlink", "Rmdir", "Rename", "Link", "Symlink",
		"Readlink", "Access", "GetXAttr", "ListXAttr", "SetXAttr", "RemoveXAttr", "Create", "Tmpfile", "Open",
		"Read", "Lseek", "GetLk", "SetLk", "SetLkw", "Release", "Write", "CopyFileRange", "Ioctl", "Flush",
		"Fsync", "Fallocate", "OpenDir", "ReadDir", "ReadDirPlus", "ReleaseDir", "FsyncDir", "StatFs", "Statx",
	}
	sort.Strings(ops)
	return ops
}()

// slowFS wraps the loopback's raw filesystem. Forget, Init, OnUnmount, String and SetDebug pass straight through:
// Forget has no reply and the others are not requests from the kernel.
type slowFS struct {
	fuse.RawFileSystem
	g *gate
}

func (s *slowFS) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if !s.g.wait("Lookup", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Lookup(c, h, name, out)
}

func (s *slowFS) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if !s.g.wait("GetAttr", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.GetAttr(c, in, out)
}

func (s *slowFS) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if !s.g.wait("SetAttr", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.SetAttr(c, in, out)
}

func (s *slowFS) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if !s.g.wait("Mknod", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Mknod(c, in, name, out)
}

func (s *slowFS) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if !s.g.wait("Mkdir", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Mkdir(c, in, name, out)
}

func (s *slowFS) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if !s.g.wait("Unlink", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Unlink(c, h, name)
}

func (s *slowFS) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if !s.g.wait("Rmdir", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Rmdir(c, h, name)
}

func (s *slowFS) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if !s.g.wait("Rename", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Rename(c, in, oldName, newName)
}

func (s *slowFS) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if !s.g.wait("Link", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Link(c, in, name, out)
}

func (s *slowFS) Symlink(c <-chan struct{}, h *fuse.InHeader, to, name string, out *fuse.EntryOut) fuse.Status {
	if !s.g.wait("Symlink", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Symlink(c, h, to, name, out)
}

func (s *slowFS) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	if !s.g.wait("Readlink", c) {
		return nil, fuse.EINTR
	}
	return s.RawFileSystem.Readlink(c, h)
}

func (s *slowFS) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if !s.g.wait("Access", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Access(c, in)
}

func (s *slowFS) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if !s.g.wait("GetXAttr", c) {
		return 0, fuse.EINTR
	}
	return s.RawFileSystem.GetXAttr(c, h, attr, dest)
}

func (s *slowFS) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if !s.g.wait("ListXAttr", c) {
		return 0, fuse.EINTR
	}
	return s.RawFileSystem.ListXAttr(c, h, dest)
}

func (s *slowFS) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if !s.g.wait("SetXAttr", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.SetXAttr(c, in, attr, data)
}

func (s *slowFS) RemoveXAttr(c <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	if !s.g.wait("RemoveXAttr", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.RemoveXAttr(c, h, attr)
}

func (s *slowFS) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if !s.g.wait("Create", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Create(c, in, name, out)
}

func (s *slowFS) Tmpfile(c <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if !s.g.wait("Tmpfile", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Tmpfile(c, in, out)
}

func (s *slowFS) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if !s.g.wait("Open", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Open(c, in, out)
}

func (s *slowFS) Read(c <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if !s.g.wait("Read", c) {
		return nil, fuse.EINTR
	}
	return s.RawFileSystem.Read(c, in, buf)
}

func (s *slowFS) Lseek(c <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	if !s.g.wait("Lseek", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Lseek(c, in, out)
}

func (s *slowFS) GetLk(c <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	if !s.g.wait("GetLk", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.GetLk(c, in, out)
}

func (s *slowFS) SetLk(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if !s.g.wait("SetLk", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.SetLk(c, in)
}

func (s *slowFS) SetLkw(c <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if !s.g.wait("SetLkw", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.SetLkw(c, in)
}

// Release and ReleaseDir have no status to answer an interrupt with: they wait, then always release, so no backing
// file descriptor leaks.
func (s *slowFS) Release(c <-chan struct{}, in *fuse.ReleaseIn) {
	s.g.wait("Release", c)
	s.RawFileSystem.Release(c, in)
}

func (s *slowFS) ReleaseDir(in *fuse.ReleaseIn) {
	s.g.wait("ReleaseDir", nil)
	s.RawFileSystem.ReleaseDir(in)
}

func (s *slowFS) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if !s.g.wait("Write", c) {
		return 0, fuse.EINTR
	}
	return s.RawFileSystem.Write(c, in, data)
}

// Writev is what go-fuse calls for every WRITE (Write only as its fallback), so it counts as "Write" and does the
// fallback itself rather than letting the server call Write and wait a second time.
func (s *slowFS) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if !s.g.wait("Write", c) {
		return 0, fuse.EINTR
	}
	n, st := s.RawFileSystem.Writev(c, in, data)
	if st != fuse.ENOSYS {
		return n, st
	}
	var flat []byte
	for _, d := range data {
		flat = append(flat, d...)
	}
	return s.RawFileSystem.Write(c, in, flat)
}

func (s *slowFS) CopyFileRange(c <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	if !s.g.wait("CopyFileRange", c) {
		return 0, fuse.EINTR
	}
	return s.RawFileSystem.CopyFileRange(c, in)
}

func (s *slowFS) Ioctl(c <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	if !s.g.wait("Ioctl", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Ioctl(c, in, inbuf, out, outbuf)
}

func (s *slowFS) Flush(c <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if !s.g.wait("Flush", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Flush(c, in)
}

func (s *slowFS) Fsync(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if !s.g.wait("Fsync", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Fsync(c, in)
}

func (s *slowFS) Fallocate(c <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if !s.g.wait("Fallocate", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Fallocate(c, in)
}

func (s *slowFS) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if !s.g.wait("OpenDir", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.OpenDir(c, in, out)
}

func (s *slowFS) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if !s.g.wait("ReadDir", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.ReadDir(c, in, out)
}

func (s *slowFS) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if !s.g.wait("ReadDirPlus", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.ReadDirPlus(c, in, out)
}

func (s *slowFS) FsyncDir(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if !s.g.wait("FsyncDir", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.FsyncDir(c, in)
}

func (s *slowFS) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if !s.g.wait("StatFs", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.StatFs(c, h, out)
}

func (s *slowFS) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if !s.g.wait("Statx", c) {
		return fuse.EINTR
	}
	return s.RawFileSystem.Statx(c, in, out)
}

// node is a loopback node whose files never use FUSE passthrough: with passthrough (kernel 6.9 and later, as root)
// the kernel reads and writes the backing file itself and slowfs would never see those operations.
type node struct{ *fs.LoopbackNode }

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
)

func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if ln, ok := ops.(*fs.LoopbackNode); ok {
		return &node{ln}
	}
	return ops
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	return noPassthrough(fh), fuseFlags, errno
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return inode, noPassthrough(fh), fuseFlags, errno
}

type file struct{ *fs.LoopbackFile }

var _ fs.FilePassthroughFder = (*file)(nil)

// PassthroughFd declines passthrough for the file (go-fuse then serves its reads and writes itself).
func (f *file) PassthroughFd() (int, bool) { return -1, false }

func noPassthrough(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &file{lf}
	}
	return fh
}

func controlHandler(g *gate) http.Handler {
	mux := http.NewServeMux()
	writeStats := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(g.stats())
	}
	mux.HandleFunc("POST /delay", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.ParseFloat(r.URL.Query().Get("ms"), 64)
		if err != nil || ms < 0 || math.IsNaN(ms) || math.IsInf(ms, 0) {
			http.Error(w, "ms must be a number of milliseconds >= 0", http.StatusBadRequest)
			return
		}
		g.delay.Store(int64(ms * float64(time.Millisecond)))
		writeStats(w)
	})
	mux.HandleFunc("POST /hang", func(w http.ResponseWriter, _ *http.Request) {
		g.hang()
		writeStats(w)
	})
	mux.HandleFunc("POST /resume", func(w http.ResponseWriter, _ *http.Request) {
		g.resume()
		writeStats(w)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) { writeStats(w) })
	return mux
}

// unmount tries a plain unmount for a while (the kernel answers EBUSY while files are open on the mount), then
// detaches the mount lazily: it leaves the namespace at once and goes away when its last user does.
func unmount(mnt string) error {
	delay := 10 * time.Millisecond
	for deadline := time.Now().Add(time.Second); ; {
		err := syscall.Unmount(mnt, 0)
		if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
			return nil // unmounted, or no longer a mount point
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			log.Printf("unmount %s: %v; detaching lazily", mnt, err)
			break
		}
		time.Sleep(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
	if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("slowfs: ")
	backing := flag.String("backing", "", "directory to serve (required)")
	mount := flag.String("mount", "", "directory to mount on (required)")
	control := flag.String("control", "127.0.0.1:0", "loopback address for the HTTP control server")
	delayMs := flag.Float64("delay-ms", 0, "initial added latency per operation, in milliseconds")
	entryTimeout := flag.Duration("entry-timeout", 0, "kernel cache time for name lookups (0: every lookup reaches slowfs)")
	attrTimeout := flag.Duration("attr-timeout", 0, "kernel cache time for attributes (0: every stat reaches slowfs)")
	negativeTimeout := flag.Duration("negative-timeout", 0, "kernel cache time for failed lookups")
	debug := flag.Bool("debug", false, "log every FUSE request on stderr")
	flag.Parse()
	if *backing == "" || *mount == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *delayMs < 0 {
		log.Fatalf("-delay-ms must be >= 0")
	}
	mnt, err := filepath.Abs(*mount)
	if err != nil {
		log.Fatal(err)
	}

	listener, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatalf("control listener: %v", err)
	}

	// From here on a signal no longer kills the process outright: it is answered by unmounting.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	loopback, err := fs.NewLoopbackRoot(*backing)
	if err != nil {
		log.Fatalf("backing directory: %v", err)
	}
	root := &node{loopback.(*fs.LoopbackNode)}
	g := newGate(time.Duration(*delayMs * float64(time.Millisecond)))
	opts := &fs.Options{
		EntryTimeout:    entryTimeout,
		AttrTimeout:     attrTimeout,
		NegativeTimeout: negativeTimeout,
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			AllowOther:  true,
			FsName:      "slowfs",
			Name:        "slowfs",
			Debug:       *debug,
		},
	}
	raw := &slowFS{RawFileSystem: fs.NewNodeFS(root, opts), g: g}
	server, err := fuse.NewServer(raw, mnt, &opts.MountOptions)
	if err != nil {
		log.Fatalf("mount %s: %v", mnt, err)
	}
	served := make(chan struct{})
	go func() {
		server.Serve()
		close(served)
	}()
	if err := server.WaitMount(); err != nil {
		_ = unmount(mnt)
		log.Fatalf("mount %s: %v", mnt, err)
	}

	httpServer := &http.Server{Handler: controlHandler(g), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := httpServer.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("control server: %v", err)
		}
	}()

	ready, _ := json.Marshal(map[string]string{"control": listener.Addr().String(), "mount": mnt})
	fmt.Println(string(ready))

	select {
	case sig := <-signals:
		log.Printf("%v: resuming and unmounting %s", sig, mnt)
	case <-served:
		log.Printf("%s was unmounted from outside; exiting", mnt)
		os.Exit(1)
	}
	// Let whatever waits on the mount finish quickly, then take the mount away.
	g.delay.Store(0)
	g.resume()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = httpServer.Shutdown(ctx)
	cancel()
	if err := unmount(mnt); err != nil {
		log.Printf("unmount %s: %v", mnt, err)
		os.Exit(1)
	}
	// After a lazy detach the serve loops run until the last file on the mount is closed; don't wait for that
	// forever. Exiting closes /dev/fuse, which ends the connection: what still uses it gets ENOTCONN.
	select {
	case <-served:
	case <-time.After(3 * time.Second):
		log.Printf("%s still in use after a lazy unmount; exiting anyway", mnt)
	}
}
