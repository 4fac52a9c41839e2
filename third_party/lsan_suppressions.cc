// LeakSanitizer suppressions for every GoogleTest binary (linked through
// //third_party:gtest_main), in effect only under --config=asan.
//
// leak:libcrypto.so -- Debian's OpenSSL is not built with frame pointers or
// the sanitizer, so a leak report that starts in it ends there (two frames,
// CRYPTO_zalloc / CRYPTO_strdup, no caller). Seen now and then at exit of
// the demo test, whose libmosquitto clients end their TLS threads while the
// process exits: OpenSSL's per-thread state is freed by the thread's exit
// handler, which may not have run yet. Without a caller such a report cannot
// point at edgeroute's code; edgeroute's own OpenSSL objects are owned by
// RAII types (net/tls.h) that ASan's use-after-free and double-free checks
// still cover.
extern "C" const char* __lsan_default_suppressions();

extern "C" const char* __lsan_default_suppressions() {
  return "leak:libcrypto.so\n";
}
