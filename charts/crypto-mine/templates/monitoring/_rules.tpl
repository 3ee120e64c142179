{{/*
Helpers of the alert and recording rules in files/prometheus/ (rendered by prometheusrule.yaml).
*/}}

{{/*
PromQL matchers of one component's series in this release: the release namespace and the
component's job, which the ServiceMonitors set to the Service name ("<fullname>-<component>").
Two releases in one Prometheus never share both. The workers of every click shard are one
component ("<fullname>-worker", "<fullname>-worker-1", ...). Call with (dict "root" $
"component" "api").
*/}}
{{- define "crypto-mine.series" -}}
{{- $jobs := include "crypto-mine.jobs" . -}}
namespace="{{ .root.Release.Namespace }}",job{{ ternary "=~" "=" (contains "|" $jobs) }}"{{ $jobs }}"
{{- end }}

{{/*
The jobs of one component, for a job=~ matcher: its Service name, or those of every shard's.
*/}}
{{- define "crypto-mine.jobs" -}}
{{- $root := .root -}}
{{- $names := list -}}
{{- $components := list .component -}}
{{- if eq .component "worker" -}}
{{- $components = include "crypto-mine.shardComponents" (dict "root" $root "component" "worker") | fromJsonArray -}}
{{- end -}}
{{- range $components -}}
{{- $names = append $names (include "crypto-mine.componentName" (dict "root" $root "component" .)) -}}
{{- end -}}
{{- join "|" $names -}}
{{- end }}

{{/*
The queue-wide gauges (depth, lag, dead letters): one process exports them at a time, an api or
a worker pod, whichever holds the reporter lease (the api too, so they stay while no worker
runs). Selected under either job.
*/}}
{{- define "crypto-mine.queueSeries" -}}
namespace="{{ .Release.Namespace }}",job=~"{{ include "crypto-mine.componentName" (dict "root" . "component" "api") }}|{{ include "crypto-mine.jobs" (dict "root" . "component" "worker") }}"
{{- end }}

{{/*
A histogram bucket bound as prometheus_client writes it in the "le" label (1 -> "1.0").
*/}}
{{- define "crypto-mine.le" -}}
{{- $v := float64 . -}}
{{- if eq $v (floor $v) }}{{ printf "%.1f" $v }}{{ else }}{{ $v }}{{ end -}}
{{- end }}

{{/*
A number as PromQL reads it, without float noise (0.0010000000000000009 -> 0.001).
*/}}
{{- define "crypto-mine.number" -}}
{{- printf "%.6g" (float64 .) -}}
{{- end }}

{{/*
Whether the workers can be at zero replicas on purpose (then no absent() rule for them).
*/}}
{{- define "crypto-mine.workerMinReplicas" -}}
{{- if eq .Values.autoscaling.mode "none" }}{{ .Values.worker.replicaCount }}{{ else }}{{ .Values.autoscaling.minReplicas }}{{ end -}}
{{- end }}

{{/*
The windows of every burn-rate alert (long and short), once each, for the recording rules.
*/}}
{{- define "crypto-mine.sloWindows" -}}
{{- $windows := list }}
{{- range .Values.monitoring.slo.burnRateAlerts }}
{{- $windows = append (append $windows .shortWindow) .longWindow }}
{{- end }}
{{- $windows | uniq | join " " }}
{{- end }}

{{/*
PromQL matchers of the series of every service of this release that talks to Redis and MongoDB
(api, worker, id-allocator, the ones switched on).
*/}}
{{- define "crypto-mine.servicesSeries" -}}
{{- $jobs := list }}
{{- range $component, $values := dict "api" .Values.api "worker" .Values.worker "id-allocator" .Values.idAllocator }}
{{- if $values.enabled }}
{{- $jobs = append $jobs (include "crypto-mine.jobs" (dict "root" $ "component" $component)) }}
{{- end }}
{{- end -}}
namespace="{{ .Release.Namespace }}",job=~"{{ $jobs | sortAlpha | join "|" }}"
{{- end }}

{{/*
Days in an SLO period written as "30d" or "4w".
*/}}
{{- define "crypto-mine.days" -}}
{{- if hasSuffix "w" . }}{{ mul (trimSuffix "w" . | int) 7 }}{{ else }}{{ trimSuffix "d" . | int }}{{ end -}}
{{- end }}
