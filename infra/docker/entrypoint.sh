#!/usr/bin/env bash
# Entrypoint of the onerec/pipeline image: picks the role from the first argument.
#
#   driver | executor      Spark on Kubernetes (what spark-submit and the spark-operator
#                          start; mirrors apache/spark's kubernetes entrypoint.sh)
#   spark-master ARGS      Spark standalone master, foreground (docker compose)
#   spark-worker ARGS      Spark standalone worker, foreground (docker compose)
#   torchrun ARGS          distributed training (models.train)
#   anything else          the official Airflow entrypoint: `api-server`, `scheduler`,
#                          `celery worker`, `bash -c ...`, `python ...`
set -euo pipefail

spark_classpath() {
  local cp="${SPARK_HOME}/jars/*"
  if [[ -n "${SPARK_EXTRA_CLASSPATH:-}" ]]; then cp="${cp}:${SPARK_EXTRA_CLASSPATH}"; fi
  if [[ -n "${HADOOP_CONF_DIR:-}" ]]; then cp="${HADOOP_CONF_DIR}:${cp}"; fi
  if [[ -n "${SPARK_CONF_DIR:-}" ]]; then cp="${SPARK_CONF_DIR}:${cp}"; else cp="${SPARK_HOME}/conf:${cp}"; fi
  printf '%s' "${cp}"
}

role="${1:-}"
case "${role}" in
  driver)
    shift
    exec "${SPARK_HOME}/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client \
      "$@"
    ;;
  executor)
    shift
    # Executor JVM options arrive as SPARK_JAVA_OPT_<n> variables, in order.
    mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/[^=]*=\(.*\)/\1/g' || true)
    exec "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "$(spark_classpath):${SPARK_DIST_CLASSPATH:-}" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL}" \
      --executor-id "${SPARK_EXECUTOR_ID}" \
      --cores "${SPARK_EXECUTOR_CORES}" \
      --app-id "${SPARK_APPLICATION_ID}" \
      --hostname "${SPARK_EXECUTOR_POD_IP}" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
      --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
  spark-master)
    shift
    exec "${SPARK_HOME}/bin/spark-class" org.apache.spark.deploy.master.Master "$@"
    ;;
  spark-worker)
    shift
    exec "${SPARK_HOME}/bin/spark-class" org.apache.spark.deploy.worker.Worker "$@"
    ;;
  torchrun)
    exec "$@"
    ;;
  *)
    exec /entrypoint "$@"
    ;;
esac
