"""Static files under the document root: content types, validators and
conditional requests, ranges, directories, traversal and symlinks, a large
file."""

import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corio_harness as H  # noqa: E402
from corio_harness import setUpModule  # noqa: E402,F401

SECRET = b"TOP-SECRET-corio-do-not-serve\n"
TEXT = b"0123456789abcdefghij"  # 20 bytes
BIG_SIZE = 20 * 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))

FILES = {
    "index.html": b"<html><body>root index</body></html>\n",
    "page.html": b"<html><body>page</body></html>\n",
    "style.css": b"body { color: red; }\n",
    "app.js": b"console.log('hi');\n",
    "data.json": b'{"k": [1, 2, 3]}\n',
    "image.png": PNG,
    "text.txt": TEXT,
    "blob.xyz": b"\x00\x01\x02unknown",
    "with space.txt": b"spaced out\n",
    "dir/index.html": b"<html>dir index</html>\n",
    "dir/inner.txt": b"inner file\n",
    "noindex/": H.Dir(),
    "noindex/a.txt": b"should not be listed\n",
    "sub/deep/file.txt": b"deep\n",
    "link_inside.txt": H.Symlink("text.txt"),
    "link_outside.txt": H.Symlink("../secret.txt"),
    "link_outside_abs.txt": None,  # filled in setUpClass (absolute path)
    "link_dir_outside": H.Symlink("../outside"),
}


def big_content():
    # deterministic, incompressible enough, fast to produce
    block = hashlib.sha256(b"corio").digest() * 2048  # 64 KiB
    return b"".join(bytes([i & 0xFF]) + block[1:] for i in range(BIG_SIZE // len(block)))


class StaticBase(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        files = dict(FILES)
        files["big.bin"] = big_content()
        cls.big_sha = hashlib.sha256(files["big.bin"]).hexdigest()
        srv = H.CorioServer(args=["--access-log", "off"], root_files={},
                            outside_files={"secret.txt": SECRET, "outside/secret.txt": SECRET})
        files["link_outside_abs.txt"] = H.Symlink(os.path.join(srv.tmpdir, "secret.txt"))
        srv.root_files = files
        cls.server = srv
        srv.start()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.close()

    def get(self, path, headers=None, method="GET"):
        """Raw request (the path is sent exactly as given)."""
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        req = ("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, path, extra)).encode("latin-1")
        return self.server.raw(req, head=(method == "HEAD"), timeout=10)

    def assertType(self, path, expected):
        r = self.get(path)
        self.assertEqual(r.status, 200, r)
        base = H.content_type_base(r.header("Content-Type"))
        if isinstance(expected, str):
            expected = (expected,)
        self.assertIn(base, expected)
        params = (r.header("Content-Type") or "").split(";")[1:]
        for p in params:
            self.assertEqual(p.strip().lower().replace(" ", ""), "charset=utf-8")
        return r


class TestContentTypes(StaticBase):
    def test_html_type(self):
        self.assertType("/page.html", "text/html")

    def test_css_type(self):
        self.assertType("/style.css", "text/css")

    def test_js_type(self):
        self.assertType("/app.js", ("text/javascript", "application/javascript"))

    def test_json_type(self):
        self.assertType("/data.json", "application/json")

    def test_png_type(self):
        r = self.assertType("/image.png", "image/png")
        self.assertEqual(r.body, PNG)

    def test_txt_type(self):
        self.assertType("/text.txt", "text/plain")

    def test_unknown_extension_octet_stream(self):
        self.assertType("/blob.xyz", "application/octet-stream")


class TestFiles(StaticBase):
    def test_file_body_exact(self):
        r = self.get("/text.txt")
        self.assertEqual((r.status, r.body), (200, TEXT))
        self.assertEqual(r.header("Content-Length"), str(len(TEXT)))

    def test_file_in_subdirectory(self):
        r = self.get("/sub/deep/file.txt")
        self.assertEqual((r.status, r.body), (200, b"deep\n"))

    def test_percent_encoded_name(self):
        r = self.get("/with%20space.txt")
        self.assertEqual((r.status, r.body), (200, b"spaced out\n"))

    def test_query_string_ignored(self):
        r = self.get("/text.txt?v=123")
        self.assertEqual((r.status, r.body), (200, TEXT))

    def test_nonexistent_file_404(self):
        self.assertEqual(self.get("/missing.txt").status, 404)

    def test_nonexistent_in_subdir_404(self):
        self.assertEqual(self.get("/dir/missing.txt").status, 404)

    def test_post_to_static_path_405(self):
        r = self.get("/text.txt", headers={"Content-Length": "0"}, method="POST")
        self.assertEqual(r.status, 405)

    def test_routes_take_precedence_with_root(self):
        r = self.get("/plaintext")
        self.assertEqual((r.status, r.body), (200, b"Hello, World!"))

    def test_validators_and_accept_ranges_present(self):
        r = self.get("/text.txt")
        self.assertTrue(r.header("ETag"))
        self.assertTrue(H.is_imf_fixdate(r.header("Last-Modified")), r.header("Last-Modified"))
        self.assertEqual(r.header("Accept-Ranges"), "bytes")
        self.assertTrue(H.is_imf_fixdate(r.header("Date")))
        self.assertTrue(r.header("Server"))

    def test_last_modified_matches_mtime(self):
        r = self.get("/text.txt")
        mtime = int(os.stat(os.path.join(self.server.root, "text.txt")).st_mtime)
        self.assertEqual(r.header("Last-Modified"), H.http_date(mtime))

    def test_head_same_headers_no_body(self):
        with self.server.connect() as c:
            c.send(b"HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /text.txt HTTP/1.1\r\n"
                   b"Host: x\r\n\r\n")
            h = c.read_response(head=True)
            g = c.read_response()
        self.assertEqual(h.status, 200)
        self.assertEqual(h.header("Content-Length"), str(len(FILES["style.css"])))
        self.assertEqual(H.content_type_base(h.header("Content-Type")), "text/css")
        self.assertTrue(h.header("ETag"))
        self.assertTrue(h.header("Last-Modified"))
        self.assertEqual(g.body, TEXT)  # the HEAD response had no body

    def test_big_file_sha256_http_client(self):
        c = self.server.http(timeout=30)
        try:
            c.request("GET", "/big.bin")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.getheader("Content-Length"), str(BIG_SIZE))
            h = hashlib.sha256()
            n = 0
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                n += len(chunk)
                h.update(chunk)
        finally:
            c.close()
        self.assertEqual(n, BIG_SIZE)
        self.assertEqual(h.hexdigest(), self.big_sha)

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_big_file_sha256_curl(self):
        out = os.path.join(self.server.tmpdir, "download.bin")
        p = H.curl("-o", out, "-w", "%{http_code}", self.server.url("/big.bin"), timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"200")
        h = hashlib.sha256()
        with open(out, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        os.unlink(out)
        self.assertEqual(h.hexdigest(), self.big_sha)

    def test_keepalive_after_file(self):
        with self.server.connect() as c:
            for path, body in (("/text.txt", TEXT), ("/dir/inner.txt", b"inner file\n"),
                               ("/text.txt", TEXT)):
                c.send(H.simple_get(path))
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, body))


class TestConditional(StaticBase):
    def test_if_none_match_etag_304(self):
        etag = self.get("/text.txt").header("ETag")
        with self.server.connect() as c:
            c.send(("GET /text.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n\r\n" % etag)
                   .encode() + H.simple_get("/plaintext"))
            r = c.read_response()
            nxt = c.read_response()
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assertEqual(nxt.body, b"Hello, World!")  # so the 304 had no body

    def test_if_none_match_304_keeps_etag(self):
        etag = self.get("/text.txt").header("ETag")
        r = self.get("/text.txt", headers={"If-None-Match": etag})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("ETag"), etag)

    def test_if_none_match_other_etag_200(self):
        r = self.get("/text.txt", headers={"If-None-Match": '"not-the-etag"'})
        self.assertEqual((r.status, r.body), (200, TEXT))

    def test_if_modified_since_equal_304(self):
        lm = self.get("/text.txt").header("Last-Modified")
        r = self.get("/text.txt", headers={"If-Modified-Since": lm})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")

    def test_if_modified_since_older_200(self):
        r = self.get("/text.txt", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
        self.assertEqual((r.status, r.body), (200, TEXT))

    def test_etag_differs_between_files(self):
        self.assertNotEqual(self.get("/text.txt").header("ETag"),
                            self.get("/style.css").header("ETag"))

    def test_etag_stable(self):
        self.assertEqual(self.get("/text.txt").header("ETag"),
                         self.get("/text.txt").header("ETag"))


class TestRanges(StaticBase):
    def test_range_first_five_bytes_206(self):
        r = self.get("/text.txt", headers={"Range": "bytes=0-4"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.header("Content-Range"), "bytes 0-4/%d" % len(TEXT))
        self.assertEqual(r.body, TEXT[:5])
        self.assertEqual(r.header("Content-Length"), "5")

    def test_range_unit_is_case_insensitive(self):
        r = self.get("/text.txt", headers={"Range": "BYTES=0-4"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, TEXT[:5])

    def test_if_range_exact_etag_gives_the_range(self):
        etag = self.get("/text.txt").header("ETag")
        r = self.get("/text.txt", headers={"Range": "bytes=0-4", "If-Range": etag})
        self.assertEqual((r.status, r.body), (206, TEXT[:5]))

    def test_if_range_weak_etag_gives_the_whole_file(self):
        etag = self.get("/text.txt").header("ETag")
        r = self.get("/text.txt", headers={"Range": "bytes=0-4", "If-Range": "W/" + etag})
        self.assertEqual((r.status, r.body), (200, TEXT))

    def test_if_range_last_modified_gives_the_range(self):
        lm = self.get("/text.txt").header("Last-Modified")
        r = self.get("/text.txt", headers={"Range": "bytes=0-4", "If-Range": lm})
        self.assertEqual((r.status, r.body), (206, TEXT[:5]))

    def test_if_range_other_date_gives_the_whole_file(self):
        r = self.get("/text.txt", headers={"Range": "bytes=0-4",
                                           "If-Range": "Sun, 06 Nov 1994 08:49:37 GMT"})
        self.assertEqual((r.status, r.body), (200, TEXT))

    def test_range_suffix(self):
        r = self.get("/text.txt", headers={"Range": "bytes=-3"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d"
                         % (len(TEXT) - 3, len(TEXT) - 1, len(TEXT)))
        self.assertEqual(r.body, TEXT[-3:])

    def test_range_open_ended(self):
        r = self.get("/text.txt", headers={"Range": "bytes=5-"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.header("Content-Range"), "bytes 5-%d/%d" % (len(TEXT) - 1, len(TEXT)))
        self.assertEqual(r.body, TEXT[5:])

    def test_range_middle(self):
        r = self.get("/text.txt", headers={"Range": "bytes=10-14"})
        self.assertEqual((r.status, r.body), (206, TEXT[10:15]))

    def test_range_end_past_size_is_clamped(self):
        r = self.get("/text.txt", headers={"Range": "bytes=15-1000"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.header("Content-Range"), "bytes 15-19/20")
        self.assertEqual(r.body, TEXT[15:])

    def test_range_unsatisfiable_416(self):
        r = self.get("/text.txt", headers={"Range": "bytes=%d-" % len(TEXT)})
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("Content-Range"), "bytes */%d" % len(TEXT))

    def test_range_far_beyond_end_416(self):
        r = self.get("/text.txt", headers={"Range": "bytes=1000-2000"})
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("Content-Range"), "bytes */%d" % len(TEXT))

    def test_range_on_big_file(self):
        off = BIG_SIZE - 100
        r = self.get("/big.bin", headers={"Range": "bytes=%d-" % off})
        self.assertEqual(r.status, 206)
        self.assertEqual(len(r.body), 100)
        self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d" % (off, BIG_SIZE - 1,
                                                                         BIG_SIZE))
        with open(os.path.join(self.server.root, "big.bin"), "rb") as f:
            f.seek(off)
            self.assertEqual(r.body, f.read())

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_curl_range(self):
        p = H.curl("-r", "2-6", self.server.url("/text.txt"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, TEXT[2:7])


class TestDirectories(StaticBase):
    def test_dir_with_slash_serves_index(self):
        r = self.get("/dir/")
        self.assertEqual((r.status, r.body), (200, FILES["dir/index.html"]))
        self.assertEqual(H.content_type_base(r.header("Content-Type")), "text/html")

    def test_root_slash_serves_index(self):
        r = self.get("/")
        self.assertEqual((r.status, r.body), (200, FILES["index.html"]))

    def test_dir_without_slash_301(self):
        r = self.get("/dir")
        self.assertEqual(r.status, 301)
        loc = r.header("Location") or ""
        self.assertTrue(loc == "/dir/" or loc.endswith("%s:%d/dir/" % (self.server.host,
                                                                        self.server.port)), loc)

    def test_dir_without_index_403_no_listing(self):
        r = self.get("/noindex/")
        self.assertEqual(r.status, 403)
        self.assertNotIn(b"a.txt", r.body)

    def test_file_in_dir_without_index_served(self):
        r = self.get("/noindex/a.txt")
        self.assertEqual(r.status, 200)


class TestTraversal(StaticBase):
    def assertNotLeaked(self, path):
        r = self.get(path)
        self.assertIn(r.status, (400, 403, 404), "%s -> %r" % (path, r))
        self.assertNotIn(SECRET.strip(), r.body)
        H.assert_server_alive(self, self.server)

    def test_dotdot(self):
        self.assertNotLeaked("/../secret.txt")

    def test_encoded_dotdot(self):
        self.assertNotLeaked("/%2e%2e/secret.txt")

    def test_encoded_dotdot_uppercase(self):
        self.assertNotLeaked("/%2E%2E/secret.txt")

    def test_dotdot_after_subdir(self):
        self.assertNotLeaked("/dir/../../secret.txt")

    def test_dotdot_deep(self):
        self.assertNotLeaked("/sub/deep/../../../secret.txt")

    def test_encoded_slash_dotdot(self):
        self.assertNotLeaked("/%2e%2e%2fsecret.txt")

    def test_encoded_dotdot_slash_in_subdir(self):
        self.assertNotLeaked("/dir/..%2f..%2fsecret.txt")

    def test_nul_byte(self):
        self.assertNotLeaked("/text.txt%00.html")

    def test_nul_byte_traversal(self):
        self.assertNotLeaked("/../secret.txt%00")

    def test_backslash(self):
        self.assertNotLeaked("/..\\secret.txt")

    def test_encoded_backslash(self):
        self.assertNotLeaked("/..%5csecret.txt")

    def test_symlink_to_outside_file_not_served(self):
        r = self.get("/link_outside.txt")
        self.assertIn(r.status, (403, 404))
        self.assertNotIn(SECRET.strip(), r.body)

    def test_absolute_symlink_to_outside_file_not_served(self):
        r = self.get("/link_outside_abs.txt")
        self.assertIn(r.status, (403, 404))
        self.assertNotIn(SECRET.strip(), r.body)

    def test_file_under_symlinked_outside_dir_not_served(self):
        r = self.get("/link_dir_outside/secret.txt")
        self.assertIn(r.status, (403, 404))
        self.assertNotIn(SECRET.strip(), r.body)

    def test_symlink_inside_root_served(self):
        r = self.get("/link_inside.txt")
        self.assertEqual((r.status, r.body), (200, TEXT))

    @unittest.skipUnless(H.have_curl(), "curl not installed")
    def test_curl_path_as_is_traversal(self):
        p = H.curl("--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                   self.server.url("/../../secret.txt"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(p.stdout, (b"400", b"403", b"404"))


if __name__ == "__main__":
    H.main()
