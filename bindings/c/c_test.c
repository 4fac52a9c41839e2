/* Tests of the C ABI, written in C against edgeroute.h only and linked with
 * libedgeroute.so, in the style of LevelDB's c_test.c: phases, and checks
 * that abort with the file and line on the first failure. */

#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_cond_timedwait */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bindings/c/edgeroute.h"

static const char* phase = "";

static void StartPhase(const char* name) {
  fprintf(stderr, "=== Test %s\n", name);
  phase = name;
}

#define CheckNoError(err)                                                 \
  if ((err) != NULL) {                                                    \
    fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, phase, (err)); \
    abort();                                                              \
  }

#define CheckCondition(cond)                                              \
  if (!(cond)) {                                                          \
    fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, phase, #cond); \
    abort();                                                              \
  }

/* Checks that `call` returned `code` and set an error message, then frees
 * the message. */
#define CheckFails(call, code, err)                                         \
  do {                                                                      \
    int rc_ = (call);                                                       \
    if (rc_ != (code) || (err) == NULL) {                                   \
      fprintf(stderr, "%s:%d: %s: %s returned %s (%s), expected %s\n",      \
              __FILE__, __LINE__, phase, #call, edgeroute_status_name(rc_), \
              (err) ? (err) : "no message", edgeroute_status_name(code));   \
      abort();                                                              \
    }                                                                       \
    edgeroute_free(err);                                                    \
    (err) = NULL;                                                           \
  } while (0)

#define CheckOk(call, err)                                               \
  do {                                                                   \
    int rc_ = (call);                                                    \
    CheckNoError(err);                                                   \
    if (rc_ != EDGEROUTE_OK) {                                           \
      fprintf(stderr, "%s:%d: %s: %s returned %s\n", __FILE__, __LINE__, \
              phase, #call, edgeroute_status_name(rc_));                 \
      abort();                                                           \
    }                                                                    \
  } while (0)

static void CheckEqual(const char* expected, const char* v, size_t n) {
  if (expected == NULL && v == NULL) return;
  if (expected != NULL && v != NULL && n == strlen(expected) &&
      memcmp(expected, v, n) == 0) {
    return;
  }
  fprintf(stderr, "%s: expected '%s', got '%.*s'\n", phase,
          expected ? expected : "(null)", (int)(v ? n : 6), v ? v : "(null)");
  abort();
}

#define S(text) (text), strlen(text)

/* ------------------------------------------------------------------------ */

static void TestVersion(void) {
  char buf[64];
  StartPhase("version");
  CheckCondition(edgeroute_version_number() == EDGEROUTE_VERSION_NUMBER);
  snprintf(buf, sizeof(buf), "%d.%d.%d", EDGEROUTE_VERSION_MAJOR,
           EDGEROUTE_VERSION_MINOR, EDGEROUTE_VERSION_PATCH);
  CheckCondition(strcmp(buf, edgeroute_version()) == 0);
  CheckCondition(strcmp(edgeroute_version(), EDGEROUTE_VERSION_STRING) == 0);
}

static void TestStatusNames(void) {
  StartPhase("status_names");
  CheckCondition(strcmp(edgeroute_status_name(EDGEROUTE_OK), "OK") == 0);
  CheckCondition(strcmp(edgeroute_status_name(EDGEROUTE_INVALID_ARGUMENT),
                        "INVALID_ARGUMENT") == 0);
  CheckCondition(strcmp(edgeroute_status_name(EDGEROUTE_RESOURCE_EXHAUSTED),
                        "RESOURCE_EXHAUSTED") == 0);
  CheckCondition(strcmp(edgeroute_status_name(EDGEROUTE_UNAUTHENTICATED),
                        "UNAUTHENTICATED") == 0);
  CheckCondition(strcmp(edgeroute_status_name(-1), "UNKNOWN") == 0);
  CheckCondition(strcmp(edgeroute_status_name(17), "UNKNOWN") == 0);
  edgeroute_free(NULL);
}

static void TestDestroyNull(void) {
  StartPhase("destroy_null");
  edgeroute_diagnostics_destroy(NULL);
  edgeroute_message_destroy(NULL);
  edgeroute_message_clear(NULL);
  edgeroute_condition_destroy(NULL);
  edgeroute_options_destroy(NULL);
  edgeroute_router_destroy(NULL);
}

static void TestCheckRoute(void) {
  char* err = NULL;
  edgeroute_diagnostics_t* diags = edgeroute_diagnostics_create();
  edgeroute_diagnostic_t d = {sizeof(edgeroute_diagnostic_t)};
  StartPhase("check_route");
  CheckCondition(diags != NULL);
  CheckCondition(edgeroute_diagnostics_count(diags) == 0);

  CheckOk(edgeroute_check_route(
              S("FROM /messages/* WHERE level = 'critical' INTO $upstream"),
              diags, &err),
          err);
  CheckCondition(edgeroute_diagnostics_error_count(diags) == 0);

  /* An invalid symbol: an error with its position. */
  CheckFails(edgeroute_check_route(
                 S("FROM /messages WHERE a = @ INTO $upstream"), diags, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(edgeroute_diagnostics_count(diags) >= 1);
  CheckCondition(edgeroute_diagnostics_error_count(diags) >= 1);
  CheckOk(edgeroute_diagnostics_get(diags, 0, &d, &err), err);
  CheckCondition(d.severity == EDGEROUTE_SEVERITY_ERROR);
  CheckCondition(strstr(d.message, "invalid symbol '@'") != NULL);
  CheckCondition(d.route_name != NULL && d.route_name[0] == '\0');
  CheckCondition(d.line == 1);
  CheckCondition(d.column == 26); /* the '@' */
  CheckCondition(d.end_column == 27);
  CheckCondition(d.excerpt != NULL && strchr(d.excerpt, '^') != NULL);
  CheckCondition(d.suggestion != NULL);
  /* The error message carries the position too. */
  CheckCondition(
      edgeroute_check_route(S("FROM /messages WHERE a = @ INTO $upstream"),
                            NULL, &err) == EDGEROUTE_INVALID_ARGUMENT);
  CheckCondition(err != NULL && strncmp(err, "1:26: ", 6) == 0);
  edgeroute_free(err);
  err = NULL;

  /* The list is refilled by each call. */
  CheckOk(
      edgeroute_check_route(S("FROM /messages INTO $upstream"), diags, &err),
      err);
  CheckCondition(edgeroute_diagnostics_error_count(diags) == 0);

  /* A trap: `k!='x'` compares a property named "k!" (a warning). */
  CheckOk(edgeroute_check_route(S("FROM /messages WHERE k!='x' INTO $upstream"),
                                diags, &err),
          err);
  CheckCondition(edgeroute_diagnostics_count(diags) >= 1);
  CheckCondition(edgeroute_diagnostics_error_count(diags) == 0);
  CheckOk(edgeroute_diagnostics_get(diags, 0, &d, &err), err);
  CheckCondition(d.severity == EDGEROUTE_SEVERITY_WARNING);

  /* Diagnostics are optional; the error message still says what is wrong. */
  CheckFails(
      edgeroute_check_route(S("FROM /messages INTO $nowhere"), NULL, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  /* errptr is optional too. */
  CheckCondition(edgeroute_check_route(S("SELECT"), NULL, NULL) ==
                 EDGEROUTE_INVALID_ARGUMENT);

  /* Error paths of the accessors. */
  CheckFails(edgeroute_diagnostics_get(diags, 1000, &d, &err),
             EDGEROUTE_OUT_OF_RANGE, err);
  CheckFails(edgeroute_diagnostics_get(NULL, 0, &d, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_diagnostics_get(diags, 0, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(edgeroute_diagnostics_count(NULL) == 0);
  CheckCondition(edgeroute_diagnostics_error_count(NULL) == 0);
  CheckFails(edgeroute_check_route(NULL, 5, diags, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);

  /* A stale message in *errptr is freed and replaced (ASan checks leaks). */
  err = (char*)malloc(8);
  strcpy(err, "stale");
  CheckFails(edgeroute_check_route(NULL, 5, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);

  edgeroute_diagnostics_destroy(diags);
}

static void TestMessageAndView(void) {
  char* err = NULL;
  const char* v;
  const char* k;
  size_t n, kn;
  const char* data;
  size_t len;
  char* unaligned;
  edgeroute_message_t* copy;
  const edgeroute_view_t* view;
  edgeroute_message_t* msg = edgeroute_message_create();
  StartPhase("message_and_view");
  CheckCondition(msg != NULL);

  CheckOk(edgeroute_message_set_body(msg, S("{\"t\":21}"), &err), err);
  CheckOk(edgeroute_message_add_property(msg, S("level"), S("critical"), &err),
          err);
  CheckOk(edgeroute_message_add_property(msg, S("nothing"), NULL, 0, &err),
          err);
  CheckOk(edgeroute_message_add_system_property(msg, S("contentType"),
                                                S("application/json"), &err),
          err);
  CheckOk(edgeroute_message_add_system_property(msg, S("connectionModuleId"),
                                                S("sensor"), &err),
          err);
  CheckOk(edgeroute_message_add_system_property(msg, S("outputName"), S("out1"),
                                                &err),
          err);
  CheckOk(
      edgeroute_message_add_system_property(msg, S("userId"), NULL, 0, &err),
      err);

  view = edgeroute_message_view(msg);
  CheckCondition(view != NULL);
  v = edgeroute_view_body(view, &n);
  CheckEqual("{\"t\":21}", v, n);
  v = edgeroute_view_source(view, &n);
  CheckEqual("/messages/modules/sensor/outputs/out1", v, n);
  CheckCondition(edgeroute_view_property_count(view) == 2);
  CheckCondition(edgeroute_view_system_property_count(view) == 4);
  CheckCondition(edgeroute_view_property(view, 0, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_STRING);
  CheckEqual("level", k, kn);
  CheckEqual("critical", v, n);
  CheckCondition(edgeroute_view_property(view, 1, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_NULL);
  CheckEqual("nothing", k, kn);
  CheckCondition(edgeroute_view_property(view, 2, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  CheckCondition(edgeroute_view_system_property(view, 3, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_NULL);
  CheckEqual("userId", k, kn);
  CheckCondition(edgeroute_view_system_property(view, 9, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  /* Case-insensitive lookups, three states. */
  CheckCondition(edgeroute_view_find_property(view, S("LEVEL"), &v, &n) ==
                 EDGEROUTE_PROPERTY_STRING);
  CheckEqual("critical", v, n);
  CheckCondition(edgeroute_view_find_property(view, S("Nothing"), &v, &n) ==
                 EDGEROUTE_PROPERTY_NULL);
  CheckCondition(edgeroute_view_find_property(view, S("absent"), &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  CheckCondition(
      edgeroute_view_find_system_property(view, S("contenttype"), &v, &n) ==
      EDGEROUTE_PROPERTY_STRING);
  CheckEqual("application/json", v, n);
  CheckCondition(edgeroute_view_find_system_property(
                     view, S("level"), &v, &n) == EDGEROUTE_PROPERTY_MISSING);

  /* A finished message cannot change until cleared. */
  CheckFails(edgeroute_message_set_body(msg, S("x"), &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_message_add_property(msg, S("a"), S("b"), &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_message_add_system_property(msg, S("a"), S("b"), &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_message_set_source(msg, S("/messages"), &err),
             EDGEROUTE_FAILED_PRECONDITION, err);

  /* Encoded bytes round-trip, from an unaligned copy. */
  CheckOk(edgeroute_message_encoded(msg, &data, &len, &err), err);
  CheckCondition(len > 0);
  v = edgeroute_view_encoded(view, &n);
  CheckCondition(v == data && n == len);
  unaligned = (char*)malloc(len + 1);
  memcpy(unaligned + 1, data, len);
  copy = edgeroute_message_create();
  CheckOk(edgeroute_message_set_encoded(copy, unaligned + 1, len, &err), err);
  free(unaligned);
  view = edgeroute_message_view(copy);
  v = edgeroute_view_body(view, &n);
  CheckEqual("{\"t\":21}", v, n);
  CheckCondition(edgeroute_view_find_property(view, S("level"), &v, &n) ==
                 EDGEROUTE_PROPERTY_STRING);
  CheckEqual("critical", v, n);
  /* Garbage is rejected and leaves the message as it was. */
  CheckFails(edgeroute_message_set_encoded(copy, S("not a message"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_set_encoded(copy, NULL, 0, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_set_encoded(copy, NULL, 3, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  v = edgeroute_view_body(edgeroute_message_view(copy), &n);
  CheckEqual("{\"t\":21}", v, n);
  /* A message loaded from bytes is finished too. */
  CheckFails(edgeroute_message_set_body(copy, S("x"), &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  edgeroute_message_destroy(copy);

  /* Clear starts again; an explicit source wins over the derived one. */
  edgeroute_message_clear(msg);
  CheckOk(edgeroute_message_set_source(msg, S("/messages/modules/x"), &err),
          err);
  CheckOk(edgeroute_message_set_body(msg, NULL, 0, &err), err);
  view = edgeroute_message_view(msg);
  v = edgeroute_view_source(view, &n);
  CheckEqual("/messages/modules/x", v, n);
  v = edgeroute_view_body(view, &n);
  CheckCondition(v != NULL && n == 0);
  CheckCondition(edgeroute_view_property_count(view) == 0);
  edgeroute_message_clear(msg);
  v = edgeroute_view_source(edgeroute_message_view(msg), &n);
  CheckEqual("/messages", v, n);

  /* NULL arguments. */
  edgeroute_message_clear(msg);
  CheckFails(edgeroute_message_set_body(NULL, S("x"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_set_body(msg, NULL, 1, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_add_property(NULL, S("a"), S("b"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_add_property(msg, NULL, 1, S("b"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_add_property(msg, S("a"), NULL, 1, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_add_system_property(NULL, S("a"), S("b"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_add_system_property(msg, NULL, 2, S("b"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_add_system_property(msg, S("a"), NULL, 2, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_set_source(NULL, S("/m"), &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_set_source(msg, NULL, 2, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_encoded(NULL, &data, &len, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_encoded(msg, NULL, &len, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_encoded(msg, &data, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_message_set_encoded(NULL, data, len, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(edgeroute_message_view(NULL) == NULL);

  /* NULL views read as empty. */
  v = edgeroute_view_body(NULL, &n);
  CheckCondition(v != NULL && n == 0);
  v = edgeroute_view_source(NULL, &n);
  CheckCondition(v != NULL && n == 0);
  v = edgeroute_view_encoded(NULL, &n);
  CheckCondition(v != NULL && n == 0);
  CheckCondition(edgeroute_view_enqueue_time_us(NULL) == 0);
  CheckCondition(edgeroute_view_sequence_number(NULL) == 0);
  CheckCondition(edgeroute_view_property_count(NULL) == 0);
  CheckCondition(edgeroute_view_system_property_count(NULL) == 0);
  CheckCondition(edgeroute_view_property(NULL, 0, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  CheckCondition(edgeroute_view_system_property(NULL, 0, &k, &kn, &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  CheckCondition(edgeroute_view_find_property(NULL, S("a"), &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  CheckCondition(edgeroute_view_find_system_property(NULL, S("a"), &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  view = edgeroute_message_view(msg);
  CheckCondition(edgeroute_view_find_property(view, NULL, 3, &v, &n) ==
                 EDGEROUTE_PROPERTY_MISSING);
  edgeroute_message_destroy(msg);
}

static void TestCondition(void) {
  char* err = NULL;
  int result = -1;
  edgeroute_condition_t* cond = NULL;
  edgeroute_diagnostics_t* diags = edgeroute_diagnostics_create();
  edgeroute_message_t* msg = edgeroute_message_create();
  edgeroute_diagnostic_t d = {sizeof(edgeroute_diagnostic_t)};
  StartPhase("condition");

  CheckOk(edgeroute_condition_compile(
              S("level = 'critical' AND $contentType = 'application/json'"),
              diags, &cond, &err),
          err);
  CheckCondition(cond != NULL);

  CheckOk(edgeroute_message_add_property(msg, S("level"), S("critical"), &err),
          err);
  CheckOk(edgeroute_message_add_system_property(msg, S("contentType"),
                                                S("application/json"), &err),
          err);
  CheckOk(edgeroute_condition_evaluate(cond, msg, &result, &err), err);
  CheckCondition(result == EDGEROUTE_TRUE);
  /* Evaluating again (and through the view) gives the same. */
  result = -1;
  CheckOk(edgeroute_condition_evaluate_view(cond, edgeroute_message_view(msg),
                                            &result, &err),
          err);
  CheckCondition(result == EDGEROUTE_TRUE);

  /* The same buffer reused for a different message: no stale cache. */
  edgeroute_message_clear(msg);
  CheckOk(edgeroute_message_add_property(msg, S("level"), S("info"), &err),
          err);
  CheckOk(edgeroute_message_add_system_property(msg, S("contentType"),
                                                S("application/json"), &err),
          err);
  CheckOk(edgeroute_condition_evaluate(cond, msg, &result, &err), err);
  CheckCondition(result == EDGEROUTE_FALSE);

  /* A missing property makes the comparison undefined. */
  edgeroute_message_clear(msg);
  CheckOk(edgeroute_message_add_system_property(msg, S("contentType"),
                                                S("application/json"), &err),
          err);
  CheckOk(edgeroute_condition_evaluate(cond, msg, &result, &err), err);
  CheckCondition(result == EDGEROUTE_UNDEFINED);
  edgeroute_condition_destroy(cond);
  cond = NULL;

  /* Compile errors: a type error, with its position. */
  CheckFails(edgeroute_condition_compile(S("level = 3"), diags, &cond, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(cond == NULL);
  CheckCondition(edgeroute_diagnostics_error_count(diags) >= 1);
  CheckOk(edgeroute_diagnostics_get(diags, 0, &d, &err), err);
  CheckCondition(d.severity == EDGEROUTE_SEVERITY_ERROR);
  CheckCondition(d.line == 1 && d.column >= 1);
  CheckCondition(strstr(d.message, "Invalid operands") != NULL);
  CheckFails(edgeroute_condition_compile(S("foo(1)"), NULL, &cond, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(cond == NULL);

  /* NULL arguments. */
  CheckFails(edgeroute_condition_compile(NULL, 1, diags, &cond, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_condition_compile(S("true"), diags, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  /* A condition is a WHERE clause: an empty one does not compile. */
  CheckFails(edgeroute_condition_compile(S("  /* none */ "), diags, &cond,
                                         &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(cond == NULL);
  CheckCondition(edgeroute_diagnostics_error_count(diags) == 1);
  CheckOk(edgeroute_condition_compile(S("true"), NULL, &cond, &err), err);
  CheckFails(edgeroute_condition_evaluate(NULL, msg, &result, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_condition_evaluate(cond, NULL, &result, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_condition_evaluate(cond, msg, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_condition_evaluate_view(NULL, NULL, &result, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_condition_evaluate_view(cond, NULL, &result, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_condition_evaluate_view(
                 cond, edgeroute_message_view(msg), NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckOk(edgeroute_condition_evaluate(cond, msg, &result, &err), err);
  CheckCondition(result == EDGEROUTE_TRUE);
  edgeroute_condition_destroy(cond);

  edgeroute_message_destroy(msg);
  edgeroute_diagnostics_destroy(diags);
}

/* ------------------------------------------------------------------------ */
/* Router                                                                   */
/* ------------------------------------------------------------------------ */

static const char kManifest[] =
    "{\"schemaVersion\": \"1.1\", \"routes\": {"
    "  \"critical\": \"FROM /messages/* WHERE level = 'critical' INTO "
    "$upstream\","
    "  \"toModule\": {\"route\": \"FROM /messages/modules/sensor/* INTO "
    "BrokeredEndpoint(\\\"/modules/filter/inputs/in1\\\")\", \"priority\": 1}"
    "}, \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 7200}}";

static const char kUpdatedManifest[] =
    "{\"schemaVersion\": \"1.1\", \"routes\": {"
    "  \"everything\": \"FROM /* INTO $upstream\""
    "}, \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 7200}}";

static const char kBadManifest[] =
    "{\"schemaVersion\": \"1.1\", \"routes\": {"
    "  \"broken\": \"FROM /messages WHERE a = @ INTO $upstream\""
    "}, \"storeAndForwardConfiguration\": {\"timeToLiveSecs\": 7200}}";

/* What a sink saw. Guarded by mu (sinks run on the router's threads). */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int batches;
  int messages;
  int destroyed;
  int64_t last_priority;
  int max_attempt;
  char last_body[64];
  char last_level[32];
  int last_level_state;
  /* Behaviour: outcome for the first attempt of each batch (later attempts
   * are DELIVERED); or, when defer is set, keep the batch for the test. */
  int first_outcome;
  int defer;
  edgeroute_batch_t* deferred;
  int zero_copy_ok;
} SinkState;

static void SinkStateInit(SinkState* s) {
  memset(s, 0, sizeof(*s));
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->first_outcome = EDGEROUTE_DELIVERED;
  s->zero_copy_ok = 1;
}

static void SinkStateFree(SinkState* s) {
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
}

static void SinkDestroy(void* state) {
  SinkState* s = (SinkState*)state;
  pthread_mutex_lock(&s->mu);
  s->destroyed++;
  pthread_mutex_unlock(&s->mu);
}

static void SinkDeliver(void* state, edgeroute_batch_t* batch) {
  SinkState* s = (SinkState*)state;
  size_t i, n = edgeroute_batch_count(batch);
  int attempt = edgeroute_batch_attempt(batch);
  pthread_mutex_lock(&s->mu);
  s->batches++;
  s->last_priority = edgeroute_batch_priority(batch);
  if (attempt > s->max_attempt) s->max_attempt = attempt;
  for (i = 0; i < n; ++i) {
    const edgeroute_view_t* view = edgeroute_batch_get(batch, i);
    size_t len, enc_len, level_len = 0;
    const char* body = edgeroute_view_body(view, &len);
    const char* enc = edgeroute_view_encoded(view, &enc_len);
    const char* level = NULL;
    /* Borrowed views: the body lies inside the encoded message. */
    if (!(body >= enc && body + len <= enc + enc_len)) s->zero_copy_ok = 0;
    if (len < sizeof(s->last_body)) {
      memcpy(s->last_body, body, len);
      s->last_body[len] = '\0';
    }
    s->last_level_state =
        edgeroute_view_find_property(view, S("level"), &level, &level_len);
    s->last_level[0] = '\0';
    if (level != NULL && level_len < sizeof(s->last_level)) {
      memcpy(s->last_level, level, level_len);
      s->last_level[level_len] = '\0';
    }
  }
  if (s->defer) {
    s->deferred = batch;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return;
  }
  if (attempt == 1 && s->first_outcome != EDGEROUTE_DELIVERED) {
    pthread_mutex_unlock(&s->mu);
    CheckCondition(edgeroute_batch_ack_all(batch, s->first_outcome, NULL) ==
                   EDGEROUTE_OK);
    return;
  }
  s->messages += (int)n;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  /* Acknowledge one by one (the first) and the rest at once. */
  CheckCondition(edgeroute_batch_ack(batch, 0, EDGEROUTE_DELIVERED, NULL) ==
                 EDGEROUTE_OK);
  CheckCondition(edgeroute_batch_ack_all(batch, EDGEROUTE_DELIVERED, NULL) ==
                 EDGEROUTE_OK);
}

static int Messages(SinkState* s) {
  int n;
  pthread_mutex_lock(&s->mu);
  n = s->messages;
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* Waits (up to 30 s, then fails) until the sink has seen `n` messages. */
static void WaitForMessages(SinkState* s, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 30;
  pthread_mutex_lock(&s->mu);
  while (s->messages < n) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) != 0) break;
  }
  pthread_mutex_unlock(&s->mu);
  CheckCondition(Messages(s) == n);
}

static edgeroute_router_t* NewRouter(const edgeroute_options_t* options,
                                     const char* manifest) {
  char* err = NULL;
  edgeroute_router_t* router = NULL;
  CheckOk(edgeroute_router_create(options, manifest, strlen(manifest), NULL,
                                  &router, &err),
          err);
  CheckCondition(router != NULL);
  return router;
}

static void Send(edgeroute_router_t* router, const char* body,
                 const char* level, const char* module) {
  char* err = NULL;
  edgeroute_message_t* msg = edgeroute_message_create();
  CheckOk(edgeroute_message_set_body(msg, body, strlen(body), &err), err);
  if (level != NULL) {
    CheckOk(edgeroute_message_add_property(msg, S("level"), level,
                                           strlen(level), &err),
            err);
  }
  if (module != NULL) {
    CheckOk(edgeroute_message_add_system_property(msg, S("connectionModuleId"),
                                                  module, strlen(module), &err),
            err);
  }
  CheckOk(edgeroute_router_send(router, msg, &err), err);
  edgeroute_message_destroy(msg);
}

/* True when some diagnostic of `diags` is an error containing `text`, for
 * `route_name`. */
static int HasError(const edgeroute_diagnostics_t* diags, const char* text,
                    const char* route_name) {
  size_t i;
  edgeroute_diagnostic_t d = {sizeof(edgeroute_diagnostic_t)};
  for (i = 0; i < edgeroute_diagnostics_count(diags); ++i) {
    CheckCondition(edgeroute_diagnostics_get(diags, i, &d, NULL) ==
                   EDGEROUTE_OK);
    if (d.severity == EDGEROUTE_SEVERITY_ERROR &&
        strstr(d.message, text) != NULL &&
        strcmp(d.route_name, route_name) == 0 && d.line >= 1 && d.column > 1) {
      return 1;
    }
  }
  return 0;
}

static void TestOptions(void) {
  char* err = NULL;
  edgeroute_router_t* router = NULL;
  edgeroute_options_t* options = edgeroute_options_create();
  StartPhase("options");
  CheckCondition(options != NULL);
  /* Setters on NULL do nothing. */
  edgeroute_options_set_store_directory(NULL, S("x"));
  edgeroute_options_set_durability(NULL, 1);
  edgeroute_options_set_store_max_bytes(NULL, 1);
  edgeroute_options_set_device_id(NULL, S("x"));
  edgeroute_options_set_dispatch_threads(NULL, 1);
  edgeroute_options_set_admission_timeout_us(NULL, 1);
  edgeroute_options_set_max_batch_size(NULL, 1);
  edgeroute_options_set_retry_backoff_us(NULL, 1, 1);
  edgeroute_options_set_drain_on_close(NULL, 1);

  /* Bad values are reported by create. */
  edgeroute_options_set_durability(options, 7);
  CheckFails(
      edgeroute_router_create(options, S(kManifest), NULL, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(router == NULL);
  edgeroute_options_set_durability(options, EDGEROUTE_DURABILITY_PROCESS);
  edgeroute_options_set_dispatch_threads(options, 0);
  CheckFails(
      edgeroute_router_create(options, S(kManifest), NULL, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  edgeroute_options_set_dispatch_threads(options, 1);
  edgeroute_options_set_max_batch_size(options, 0);
  CheckFails(
      edgeroute_router_create(options, S(kManifest), NULL, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  edgeroute_options_set_max_batch_size(options, 10);
  edgeroute_options_set_admission_timeout_us(options, -5);
  CheckFails(
      edgeroute_router_create(options, S(kManifest), NULL, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  edgeroute_options_set_admission_timeout_us(options, 1000);
  edgeroute_options_set_retry_backoff_us(options, 0, 10);
  CheckFails(
      edgeroute_router_create(options, S(kManifest), NULL, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  edgeroute_options_set_retry_backoff_us(options, 1000, 10000);
  edgeroute_options_set_device_id(options, S("gateway7"));
  edgeroute_options_set_drain_on_close(options, 0);
  router = NewRouter(options, kManifest);
  edgeroute_router_destroy(router);
  edgeroute_options_destroy(options);
}

static void TestRouterCreateErrors(void) {
  char* err = NULL;
  edgeroute_router_t* router = NULL;
  edgeroute_diagnostics_t* diags = edgeroute_diagnostics_create();
  StartPhase("router_create_errors");
  CheckFails(
      edgeroute_router_create(NULL, S(kBadManifest), diags, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(router == NULL);
  CheckCondition(edgeroute_diagnostics_error_count(diags) >= 1);
  CheckCondition(HasError(diags, "invalid symbol '@'", "broken"));
  CheckFails(
      edgeroute_router_create(NULL, S("{not json"), diags, &router, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(edgeroute_diagnostics_error_count(diags) >= 1);
  CheckFails(edgeroute_router_create(NULL, NULL, 3, diags, &router, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_create(NULL, S(kManifest), diags, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);

  /* edgeroute_check_manifest agrees. */
  CheckOk(edgeroute_check_manifest(S(kManifest), diags, &err), err);
  CheckCondition(edgeroute_diagnostics_error_count(diags) == 0);
  CheckFails(edgeroute_check_manifest(S(kBadManifest), diags, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(HasError(diags, "invalid symbol '@'", "broken"));
  CheckFails(edgeroute_check_manifest(NULL, 1, diags, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  edgeroute_diagnostics_destroy(diags);
}

static void TestRouting(void) {
  char* err = NULL;
  SinkState up, mod;
  edgeroute_router_t* router;
  edgeroute_message_t* msg = edgeroute_message_create();
  edgeroute_message_t* proto = edgeroute_message_create();
  edgeroute_message_t* batch[3];
  edgeroute_metrics_t m = {sizeof(edgeroute_metrics_t)};
  edgeroute_endpoint_metrics_t em = {sizeof(edgeroute_endpoint_metrics_t)};
  const char* bodies[3] = {"b1", "b2", "b3"};
  size_t lengths[3] = {2, 2, 2};
  size_t accepted = 99;
  const char* data;
  size_t len;
  char* unaligned;
  char* text = NULL;
  size_t text_len = 0;
  int i;
  StartPhase("routing");
  SinkStateInit(&up);
  SinkStateInit(&mod);
  router = NewRouter(NULL, kManifest);
  CheckOk(edgeroute_router_set_sink(router, S("iothub"), &up, SinkDestroy,
                                    SinkDeliver, &err),
          err);
  CheckOk(edgeroute_router_set_sink(router, S("DEV/filter/in1"), &mod,
                                    SinkDestroy, SinkDeliver, &err),
          err);

  Send(router, "hot", "critical", NULL);     /* -> iothub */
  Send(router, "reading", "info", "sensor"); /* -> module */
  Send(router, "nothing", "info", NULL);     /* orphaned */
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&up) == 1);
  CheckCondition(strcmp(up.last_body, "hot") == 0);
  CheckCondition(up.last_level_state == EDGEROUTE_PROPERTY_STRING);
  CheckCondition(strcmp(up.last_level, "critical") == 0);
  CheckCondition(up.last_priority == 2000000000);
  CheckCondition(Messages(&mod) == 1);
  CheckCondition(strcmp(mod.last_body, "reading") == 0);
  CheckCondition(mod.last_priority == 1);
  CheckCondition(up.zero_copy_ok && mod.zero_copy_ok);

  /* send_encoded, from an unaligned copy. */
  CheckOk(edgeroute_message_set_body(msg, S("encoded"), &err), err);
  CheckOk(edgeroute_message_add_property(msg, S("level"), S("critical"), &err),
          err);
  CheckOk(edgeroute_message_encoded(msg, &data, &len, &err), err);
  unaligned = (char*)malloc(len + 3);
  memcpy(unaligned + 3, data, len);
  CheckOk(edgeroute_router_send_encoded(router, unaligned + 3, len, &err), err);
  CheckFails(edgeroute_router_send_encoded(router, unaligned, len, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  free(unaligned);
  CheckFails(edgeroute_router_send_encoded(router, NULL, 0, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  /* The same message handle sent again (already finished). */
  CheckOk(edgeroute_router_send(router, msg, &err), err);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&up) == 3);
  CheckCondition(strcmp(up.last_body, "encoded") == 0);

  /* send_batch. */
  for (i = 0; i < 3; ++i) {
    batch[i] = edgeroute_message_create();
    CheckOk(edgeroute_message_set_body(batch[i], bodies[i], lengths[i], &err),
            err);
    CheckOk(edgeroute_message_add_property(batch[i], S("level"), S("critical"),
                                           &err),
            err);
  }
  CheckOk(edgeroute_router_send_batch(router, batch, 3, &accepted, &err), err);
  CheckCondition(accepted == 3);
  CheckOk(edgeroute_router_send_batch(router, batch, 0, &accepted, &err), err);
  CheckCondition(accepted == 0);
  edgeroute_message_destroy(batch[1]);
  batch[1] = NULL;
  CheckFails(edgeroute_router_send_batch(router, batch, 3, &accepted, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckCondition(accepted == 1);
  CheckFails(edgeroute_router_send_batch(router, NULL, 2, &accepted, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  edgeroute_message_destroy(batch[0]);
  edgeroute_message_destroy(batch[2]);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&up) == 7);

  /* send_bodies with a prototype (properties shared, bodies differ). */
  CheckOk(
      edgeroute_message_add_property(proto, S("level"), S("critical"), &err),
      err);
  CheckOk(edgeroute_message_add_system_property(proto, S("connectionModuleId"),
                                                S("sensor"), &err),
          err);
  CheckOk(edgeroute_router_send_bodies(router, proto, bodies, lengths, 3,
                                       &accepted, &err),
          err);
  CheckCondition(accepted == 3);
  /* Without a prototype: nothing matches "critical" nor the module. */
  CheckOk(edgeroute_router_send_bodies(router, NULL, bodies, lengths, 3,
                                       &accepted, &err),
          err);
  CheckFails(edgeroute_router_send_bodies(router, proto, NULL, lengths, 3,
                                          &accepted, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_send_bodies(router, proto, bodies, NULL, 3,
                                          &accepted, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&up) == 10);
  CheckCondition(strcmp(up.last_body, "b3") == 0);
  CheckCondition(strcmp(up.last_level, "critical") == 0);
  CheckCondition(Messages(&mod) == 4);

  /* Metrics. */
  CheckOk(edgeroute_router_get_metrics(router, &m, &err), err);
  CheckCondition(m.received == 15);
  CheckCondition(m.orphaned == 4); /* "nothing" and three bare bodies */
  CheckCondition(m.delivered == 14);
  CheckCondition(m.enqueued == 14);
  CheckCondition(m.queue_depth == 0);
  CheckCondition(m.endpoints == 2);
  CheckCondition(m.routes == 2);
  CheckCondition(m.route_updates == 0);
  CheckOk(
      edgeroute_router_endpoint_metrics(router, S("DEV/filter/in1"), &em, &err),
      err);
  CheckCondition(em.delivered == 4 && em.enqueued == 4);
  CheckCondition(em.has_sink == 1 && em.dead == 0);
  CheckFails(edgeroute_router_endpoint_metrics(router, S("nope"), &em, &err),
             EDGEROUTE_NOT_FOUND, err);
  CheckFails(edgeroute_router_endpoint_metrics(router, S("iothub"), NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_endpoint_metrics(NULL, S("iothub"), &em, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckOk(edgeroute_router_prometheus_text(router, &text, &text_len, &err),
          err);
  CheckCondition(text != NULL && text_len == strlen(text));
  CheckCondition(strstr(text, "edgeroute_messages_received_total 15") != NULL);
  edgeroute_free(text);
  CheckFails(edgeroute_router_prometheus_text(router, NULL, &text_len, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_get_metrics(router, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);

  /* Update routes: a bad manifest changes nothing; a good one applies. */
  CheckFails(
      edgeroute_router_update_routes(router, S(kBadManifest), NULL, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  Send(router, "still", "critical", NULL);
  Send(router, "dropped", "info", NULL);
  CheckOk(
      edgeroute_router_update_routes(router, S(kUpdatedManifest), NULL, &err),
      err);
  Send(router, "now routed", "info", NULL);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&up) == 12);
  CheckCondition(strcmp(up.last_body, "now routed") == 0);
  CheckOk(edgeroute_router_get_metrics(router, &m, &err), err);
  CheckCondition(m.route_updates == 1 && m.routes == 3);

  /* Replacing a sink destroys the old state; removing a sink works. */
  CheckOk(edgeroute_router_set_sink(router, S("DEV/filter/in1"), NULL, NULL,
                                    NULL, &err),
          err);
  CheckCondition(mod.destroyed <= 1);

  /* Error paths. */
  CheckFails(
      edgeroute_router_set_sink(router, S(""), &up, NULL, SinkDeliver, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(
      edgeroute_router_set_sink(NULL, S("x"), &up, NULL, SinkDeliver, &err),
      EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_send(router, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_send(NULL, msg, &err), EDGEROUTE_INVALID_ARGUMENT,
             err);
  CheckFails(edgeroute_router_update_routes(NULL, S(kManifest), NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_update_routes(router, NULL, 1, NULL, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_wait_idle(NULL, 1, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_router_close(NULL, &err), EDGEROUTE_INVALID_ARGUMENT,
             err);

  /* Close: later calls fail with FAILED_PRECONDITION; metrics still work. */
  CheckOk(edgeroute_router_close(router, &err), err);
  CheckOk(edgeroute_router_close(router, &err), err);
  CheckFails(edgeroute_router_send(router, msg, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckOk(edgeroute_message_encoded(msg, &data, &len, &err), err);
  CheckFails(edgeroute_router_send_encoded(router, data, len, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_router_send_batch(router, &msg, 1, &accepted, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckCondition(accepted == 0);
  CheckFails(edgeroute_router_send_bodies(router, NULL, bodies, lengths, 3,
                                          &accepted, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_router_update_routes(router, S(kManifest), NULL, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_router_set_sink(router, S("iothub"), &up, NULL,
                                       SinkDeliver, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_router_wait_idle(router, 1, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckOk(edgeroute_router_get_metrics(router, &m, &err), err);
  CheckCondition(m.received == 18);
  CheckOk(edgeroute_router_prometheus_text(router, &text, NULL, &err), err);
  edgeroute_free(text);
  CheckCondition(up.destroyed == 0);
  edgeroute_router_destroy(router);
  /* Every state destroyed exactly once. */
  CheckCondition(up.destroyed == 1);
  CheckCondition(mod.destroyed == 1);

  edgeroute_message_destroy(msg);
  edgeroute_message_destroy(proto);
  SinkStateFree(&up);
  SinkStateFree(&mod);
}

static void TestAcknowledgements(void) {
  char* err = NULL;
  SinkState s;
  edgeroute_router_t* router;
  edgeroute_options_t* options = edgeroute_options_create();
  edgeroute_metrics_t m = {sizeof(edgeroute_metrics_t)};
  edgeroute_batch_t* b;
  size_t len;
  StartPhase("acknowledgements");
  /* Retries after 1 ms instead of edgeHub's 1 s. */
  edgeroute_options_set_retry_backoff_us(options, 1000, 2000);
  router = NewRouter(options, kManifest);

  /* RETRY once, then delivered on the second attempt. */
  SinkStateInit(&s);
  s.first_outcome = EDGEROUTE_RETRY;
  CheckOk(edgeroute_router_set_sink(router, S("iothub"), &s, NULL, SinkDeliver,
                                    &err),
          err);
  Send(router, "retry me", "critical", NULL);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&s) == 1);
  CheckCondition(s.max_attempt == 2);
  CheckOk(edgeroute_router_get_metrics(router, &m, &err), err);
  CheckCondition(m.retried == 1 && m.delivered == 1);

  /* REJECT: dropped and counted. */
  s.first_outcome = EDGEROUTE_REJECT;
  s.max_attempt = 0;
  Send(router, "reject me", "critical", NULL);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckCondition(Messages(&s) == 1);
  CheckCondition(s.max_attempt == 1);
  CheckOk(edgeroute_router_get_metrics(router, &m, &err), err);
  CheckCondition(m.rejected == 1 && m.delivered == 1);

  /* Deferred: the sink keeps the batch; the test acknowledges it here. */
  pthread_mutex_lock(&s.mu);
  s.defer = 1;
  s.first_outcome = EDGEROUTE_DELIVERED;
  pthread_mutex_unlock(&s.mu);
  /* Queued while the endpoint has no sink, so one batch gets both. */
  CheckOk(
      edgeroute_router_set_sink(router, S("iothub"), NULL, NULL, NULL, &err),
      err);
  Send(router, "later 1", "critical", NULL);
  Send(router, "later 2", "critical", NULL);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckOk(edgeroute_router_set_sink(router, S("iothub"), &s, NULL, SinkDeliver,
                                    &err),
          err);
  pthread_mutex_lock(&s.mu);
  while (s.deferred == NULL) pthread_cond_wait(&s.cv, &s.mu);
  b = s.deferred;
  pthread_mutex_unlock(&s.mu);
  CheckCondition(edgeroute_batch_count(b) == 2);
  {
    const char* endpoint = edgeroute_batch_endpoint(b, &len);
    CheckEqual("iothub", endpoint, len);
  }
  CheckCondition(strcmp(edgeroute_batch_endpoint(b, NULL), "iothub") == 0);
  CheckCondition(edgeroute_batch_attempt(b) == 1);
  CheckCondition(edgeroute_batch_priority(b) == 2000000000);
  CheckCondition(edgeroute_batch_get(b, 2) == NULL);
  CheckFails(edgeroute_batch_ack(b, 2, EDGEROUTE_DELIVERED, &err),
             EDGEROUTE_OUT_OF_RANGE, err);
  CheckFails(edgeroute_batch_ack(b, 0, 42, &err), EDGEROUTE_INVALID_ARGUMENT,
             err);
  CheckFails(edgeroute_batch_ack_all(b, -1, &err), EDGEROUTE_INVALID_ARGUMENT,
             err);
  CheckFails(edgeroute_batch_ack(NULL, 0, EDGEROUTE_DELIVERED, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  CheckFails(edgeroute_batch_ack_all(NULL, EDGEROUTE_DELIVERED, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  /* Not acknowledged yet: not idle. */
  CheckFails(edgeroute_router_wait_idle(router, 1000, &err),
             EDGEROUTE_DEADLINE_EXCEEDED, err);
  CheckOk(edgeroute_batch_ack(b, 0, EDGEROUTE_DELIVERED, &err), err);
  /* An acknowledged message is gone; a second ack is refused. */
  CheckCondition(edgeroute_batch_get(b, 0) == NULL);
  CheckCondition(edgeroute_batch_get(b, 1) != NULL);
  CheckFails(edgeroute_batch_ack(b, 0, EDGEROUTE_DELIVERED, &err),
             EDGEROUTE_FAILED_PRECONDITION, err);
  CheckFails(edgeroute_router_wait_idle(router, 1000, &err),
             EDGEROUTE_DEADLINE_EXCEEDED, err);
  /* From another thread would do as well; the last ack releases it. */
  CheckOk(edgeroute_batch_ack_all(b, EDGEROUTE_DELIVERED, &err), err);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);
  CheckOk(edgeroute_router_get_metrics(router, &m, &err), err);
  CheckCondition(m.delivered == 3);

  /* NULL batch accessors. */
  CheckCondition(edgeroute_batch_count(NULL) == 0);
  CheckCondition(edgeroute_batch_get(NULL, 0) == NULL);
  CheckCondition(edgeroute_batch_priority(NULL) == -1);
  CheckCondition(edgeroute_batch_attempt(NULL) == -1);
  CheckCondition(strcmp(edgeroute_batch_endpoint(NULL, &len), "") == 0 &&
                 len == 0);

  edgeroute_router_destroy(router);
  edgeroute_options_destroy(options);
  SinkStateFree(&s);
}

static void TestStore(void) {
  char* err = NULL;
  char dir[512];
  const char* tmp = getenv("TEST_TMPDIR");
  SinkState s;
  edgeroute_router_t* router;
  edgeroute_options_t* options = edgeroute_options_create();
  StartPhase("store");
  snprintf(dir, sizeof(dir), "%s/c_test_store", tmp != NULL ? tmp : ".");
  edgeroute_options_set_store_directory(options, dir, strlen(dir));
  edgeroute_options_set_durability(options, EDGEROUTE_DURABILITY_POWER);

  /* No sink: the messages wait in the store across a close. */
  router = NewRouter(options, kManifest);
  Send(router, "kept 1", "critical", NULL);
  Send(router, "kept 2", "critical", NULL);
  CheckOk(edgeroute_router_close(router, &err), err);
  edgeroute_router_destroy(router);

  /* A second router on the same store delivers them. */
  SinkStateInit(&s);
  router = NewRouter(options, kManifest);
  CheckOk(edgeroute_router_set_sink(router, S("iothub"), &s, NULL, SinkDeliver,
                                    &err),
          err);
  /* Recovered messages are not covered by wait_idle: wait for the sink. */
  WaitForMessages(&s, 2);
  CheckCondition(strcmp(s.last_body, "kept 2") == 0);
  /* The store is locked while a router uses it. */
  {
    edgeroute_router_t* second = NULL;
    int rc =
        edgeroute_router_create(options, S(kManifest), NULL, &second, &err);
    CheckCondition(rc != EDGEROUTE_OK && second == NULL && err != NULL);
    edgeroute_free(err);
    err = NULL;
  }
  edgeroute_router_destroy(router);
  edgeroute_options_destroy(options);
  SinkStateFree(&s);
}

/* Caller-allocated structs grow at the end only, and the library writes at
 * most struct_size bytes: a struct from an older, smaller header gets its
 * fields and nothing past them; a struct from a newer, larger header keeps
 * what the library does not know; struct_size 0 is refused. */
typedef struct {
  size_t struct_size;
  uint64_t received;
  uint64_t orphaned;
} OlderMetrics;

typedef struct {
  size_t struct_size;
  int severity;
  const char* message;
} OlderDiagnostic;

typedef struct {
  size_t struct_size;
  uint64_t enqueued;
} OlderEndpointMetrics;

typedef struct {
  edgeroute_metrics_t current;
  uint64_t added_later; /* a field a newer header might have */
} NewerMetrics;

static void TestStructGrowth(void) {
  char* err = NULL;
  edgeroute_router_t* router = NewRouter(NULL, kManifest);
  edgeroute_diagnostics_t* diags = edgeroute_diagnostics_create();
  edgeroute_condition_t* cond = NULL;
  struct {
    OlderMetrics m;
    uint64_t canary;
  } older;
  struct {
    OlderDiagnostic d;
    uint64_t canary;
  } older_diag;
  struct {
    OlderEndpointMetrics em;
    uint64_t canary;
  } older_endpoint;
  NewerMetrics newer;
  edgeroute_metrics_t zero;
  StartPhase("struct growth");
  Send(router, "x", "info", NULL); /* orphaned */
  Send(router, "y", "info", NULL);
  CheckOk(edgeroute_router_wait_idle(router, 10000000, &err), err);

  memset(&older, 0xAB, sizeof(older));
  older.m.struct_size = sizeof(OlderMetrics);
  CheckOk(edgeroute_router_get_metrics(router, (edgeroute_metrics_t*)&older.m,
                                       &err),
          err);
  CheckCondition(older.m.struct_size == sizeof(OlderMetrics));
  CheckCondition(older.m.received == 2);
  CheckCondition(older.m.orphaned == 2);
  CheckCondition(older.canary == 0xABABABABABABABABull);

  memset(&newer, 0, sizeof(newer));
  newer.current.struct_size = sizeof(newer);
  newer.added_later = 42;
  CheckOk(edgeroute_router_get_metrics(router, &newer.current, &err), err);
  CheckCondition(newer.current.received == 2);
  CheckCondition(newer.current.routes == 2);
  CheckCondition(newer.added_later == 42);

  memset(&older_endpoint, 0xCD, sizeof(older_endpoint));
  older_endpoint.em.struct_size = sizeof(OlderEndpointMetrics);
  CheckOk(edgeroute_router_endpoint_metrics(
              router, S("iothub"),
              (edgeroute_endpoint_metrics_t*)&older_endpoint.em, &err),
          err);
  CheckCondition(older_endpoint.em.enqueued == 0);
  CheckCondition(older_endpoint.canary == 0xCDCDCDCDCDCDCDCDull);

  memset(&zero, 0, sizeof(zero));
  CheckFails(edgeroute_router_get_metrics(router, &zero, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  zero.struct_size = sizeof(size_t); /* no room for a field */
  CheckFails(edgeroute_router_get_metrics(router, &zero, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);

  CheckFails(edgeroute_condition_compile(S("k = 1"), diags, &cond, &err),
             EDGEROUTE_INVALID_ARGUMENT, err);
  memset(&older_diag, 0xEF, sizeof(older_diag));
  older_diag.d.struct_size = sizeof(OlderDiagnostic);
  CheckOk(edgeroute_diagnostics_get(
              diags, 0, (edgeroute_diagnostic_t*)&older_diag.d, &err),
          err);
  CheckCondition(older_diag.d.severity == EDGEROUTE_SEVERITY_ERROR);
  CheckCondition(strstr(older_diag.d.message, "Invalid operands") != NULL);
  CheckCondition(older_diag.canary == 0xEFEFEFEFEFEFEFEFull);

  CheckOk(edgeroute_router_close(router, &err), err);
  edgeroute_router_destroy(router);
  edgeroute_diagnostics_destroy(diags);
}

int main(void) {
  TestVersion();
  TestStatusNames();
  TestDestroyNull();
  TestCheckRoute();
  TestMessageAndView();
  TestCondition();
  TestOptions();
  TestRouterCreateErrors();
  TestRouting();
  TestAcknowledgements();
  TestStore();
  TestStructGrowth();
  fprintf(stderr, "PASS\n");
  return 0;
}
