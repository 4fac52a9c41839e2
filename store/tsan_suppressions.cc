// ThreadSanitizer suppressions for tests that use the store. Debian's
// librocksdb is not built with -fsanitize=thread, so TSan cannot see the
// ordering of RocksDB's lock-free memtable and reports its reads and writes
// as races. Only stacks that pass through librocksdb are suppressed; races
// in edgeroute's own code are still reported. Link this library (it is
// alwayslink) into any TSan-run test that uses //store.

extern "C" const char* __tsan_default_suppressions();

extern "C" const char* __tsan_default_suppressions() {
  return "race:librocksdb.so\n";
}
