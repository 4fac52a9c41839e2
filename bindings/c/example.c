#include <stdio.h>

#include <edgeroute/edgeroute.h>

static const char kManifest[] =
    "{\"schemaVersion\": \"1.0\", \"routes\": "
    "{\"alerts\": \"FROM /messages/* WHERE hot = 'yes' INTO $upstream\"}}";

static void OnBatch(void* state, edgeroute_batch_t* batch) {
  *(size_t*)state += edgeroute_batch_count(batch);
  edgeroute_batch_ack_all(batch, EDGEROUTE_DELIVERED, NULL);
}

int main(void) {
  char* err = NULL;
  edgeroute_router_t* router = NULL;
  size_t seen = 0;
  edgeroute_message_t* m = edgeroute_message_create();
  if (edgeroute_router_create(NULL, kManifest, sizeof(kManifest) - 1, NULL,
                              &router, &err) != EDGEROUTE_OK) {
    fprintf(stderr, "bad manifest: %s\n", err);
    return 1;
  }
  edgeroute_router_set_sink(router, "iothub", 6, &seen, NULL, OnBatch, NULL);
  for (int i = 0; i < 1000; ++i) {
    edgeroute_message_clear(m);
    if (i % 10 == 0)
      edgeroute_message_add_property(m, "hot", 3, "yes", 3, NULL);
    edgeroute_router_send(router, m, NULL);
  }
  edgeroute_metrics_t stats = {sizeof(stats)};
  edgeroute_router_close(router, NULL); /* delivers what is queued */
  edgeroute_router_get_metrics(router, &stats, NULL);
  printf("received %d, delivered %d, callback saw %d\n", (int)stats.received,
         (int)stats.delivered, (int)seen);
  edgeroute_router_destroy(router);
  edgeroute_message_destroy(m);
  return stats.delivered == 100 && seen == 100 ? 0 : 1;
}
