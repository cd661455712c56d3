package ort

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
// the library for this OS/architecture into the user cache, and checks its
// pinned sha256. The file appears in the cache only once it is complete and
// verified.
func Fetch(progress func(string)) (Library, error) {
	say := func(format string, a ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, a...))
		}
	}
	plat, err := currentPlatform()
	if err != nil {
		return Library{}, err
	}
	if !npmAvailable() {
		return Library{}, fmt.Errorf("fetch ONNX Runtime %s: npm is not installed", Version)
	}
	dir, err := CacheDir()
	if err != nil {
		return Library{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Library{}, fmt.Errorf("create ORT cache directory: %w", err)
	}
	// Several processes (parallel test binaries, say) may fetch at once:
	// the first one fetches, the others wait and then find it cached.
	unlock, err := lockDir(dir)
	if err != nil {
		return Library{}, err
	}
	defer unlock()
	if lib, ok, err := cached(); err == nil && ok {
		return lib, nil
	}
	work, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return Library{}, fmt.Errorf("create ORT download directory: %w", err)
	}
	defer os.RemoveAll(work)

	say("fetching ONNX Runtime %s: npm pack %s (about 110 MB)…", Version, npmPackage)
	cmd := exec.Command("npm", "pack", "--ignore-scripts", "--silent", "--pack-destination", work, npmPackage)
	cmd.Dir = work
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Library{}, fmt.Errorf("npm pack %s failed: %v: %s", npmPackage, err, lastLine(string(out)))
	}
	tarballs, _ := filepath.Glob(filepath.Join(work, "*.tgz"))
	if len(tarballs) != 1 {
		return Library{}, fmt.Errorf("npm pack %s produced no tarball", npmPackage)
	}
	say("extracting %s…", plat.member)
	tmp := filepath.Join(work, plat.file)
	if err := extractMember(tarballs[0], plat.member, tmp, say); err != nil {
		return Library{}, err
	}
	sum, err := fileSHA256(tmp)
	if err != nil {
		return Library{}, err
	}
	if sum != plat.sha256 {
		return Library{}, fmt.Errorf("ONNX Runtime library from %s has sha256 %s, want %s; refusing to use it", npmPackage, sum, plat.sha256)
	}
	dst := filepath.Join(dir, plat.file)
	if err := os.Rename(tmp, dst); err != nil {
		return Library{}, fmt.Errorf("install ONNX Runtime library: %w", err)
	}
	if err := writeStamp(dst, sum); err != nil {
		return Library{}, err
	}
	say("ONNX Runtime %s installed at %s (sha256 verified)", Version, dst)
	return Library{Path: dst, Source: SourceFetched, Verified: true}, nil
}

// extractMember copies one file out of a .tgz.
func extractMember(tgz, member, dst string, say func(string, ...any)) error {
	f, err := os.Open(tgz)
	if err != nil {
		return fmt.Errorf("open %s: %w", tgz, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", tgz, err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s is not in the %s tarball", member, npmPackage)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", tgz, err)
		}
		if hdr.Name != member {
			continue
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return fmt.Errorf("create %s: %w", dst, err)
		}
		n, err := io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract %s: %w", member, err)
		}
		say("extracted %.1f MB", float64(n)/1e6)
		return nil
	}
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

// A stamp file next to the cached library records its size, modification
// time and verified sha256, so that the 45 MB file is hashed again only when
// it changed.
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

// verifyCached reports whether the cached library matches want, trusting an
// up-to-date stamp and hashing the file otherwise.
func verifyCached(lib, want string) (bool, error) {
	st, err := os.Stat(lib)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", lib, err)
	}
	if data, err := os.ReadFile(stampPath(lib)); err == nil {
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
