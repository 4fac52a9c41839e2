/* Tests of the C ABI, written in C against edgeroute.h only and linked with
 * libedgeroute.so, in the style of LevelDB's c_test.c: phases, and checks
 * that abort with the file and line on the first failure. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  edgeroute_diagnostic_t d;
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
  edgeroute_diagnostic_t d;
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

int main(void) {
  TestVersion();
  TestStatusNames();
  TestDestroyNull();
  TestCheckRoute();
  TestMessageAndView();
  TestCondition();
  fprintf(stderr, "PASS\n");
  return 0;
}
