{{/*
Name of the chart, overridable with nameOverride; cut to 63 characters (DNS label limit).
*/}}
{{- define "crypto-mine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, prefixed to the chart name unless it contains it.
Cut to 63 characters because some Kubernetes name fields are limited to that.
*/}}
{{- define "crypto-mine.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of one component's objects: "<fullname>-<component>". Call with (dict "root" $ "component" "api").
*/}}
{{- define "crypto-mine.componentName" -}}
{{- printf "%s-%s" (include "crypto-mine.fullname" .root | trunc 50 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart label value: name-version, "+" replaced (not allowed in label values).
*/}}
{{- define "crypto-mine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every object of the release.
*/}}
{{- define "crypto-mine.labels" -}}
helm.sh/chart: {{ include "crypto-mine.chart" . }}
app.kubernetes.io/name: {{ include "crypto-mine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crypto-mine
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component (immutable once deployed: keep them minimal).
Call with (dict "root" $ "component" "api").
*/}}
{{- define "crypto-mine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crypto-mine.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
All labels of one component's objects. Call with (dict "root" $ "component" "api").
*/}}
{{- define "crypto-mine.componentLabels" -}}
{{ include "crypto-mine.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Image reference of one component: "<registry>/<repository>:<tag>", the tag defaulting to the
chart's appVersion; a digest, when set, replaces the tag. Call with (dict "root" $ "image" .Values.api.image).
*/}}
{{- define "crypto-mine.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $repository := .image.repository -}}
{{- $ref := ternary $repository (printf "%s/%s" $registry $repository) (empty $registry) -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .root.Values.image.tag .image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{/*
Name of the ServiceAccount of one component. Call with (dict "root" $ "component" "api" "values" .Values.api).
*/}}
{{- define "crypto-mine.serviceAccountName" -}}
{{- if .values.serviceAccount.create -}}
{{- default (include "crypto-mine.componentName" .) .values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/*
Secret that holds the generated or given values (JWT secret, MongoDB URI, Redis URL).
*/}}
{{- define "crypto-mine.secretName" -}}
{{- include "crypto-mine.fullname" . }}
{{- end }}

{{/*
Environment variables of one secret reference: from an existing Secret when named, else from
the chart's Secret. Call with (dict "root" $ "name" "JWT_SECRET" "ref" .Values.secrets.jwt).
*/}}
{{- define "crypto-mine.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ default (include "crypto-mine.secretName" .root) .ref.existingSecret }}
      key: {{ .ref.key }}
{{- end }}

{{/*
MongoDB URI written into the chart's Secret: the in-chart dev server, or secrets.mongodb.uri.
*/}}
{{- define "crypto-mine.mongodbUri" -}}
{{- if .Values.mongodb.enabled -}}
{{- printf "mongodb://%s:27017/?directConnection=true" (include "crypto-mine.componentName" (dict "root" . "component" "mongodb")) -}}
{{- else -}}
{{- .Values.secrets.mongodb.uri -}}
{{- end -}}
{{- end }}

{{/*
Redis URL written into the chart's Secret: the in-chart dev server, or secrets.redis.url.
*/}}
{{- define "crypto-mine.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:6379/0" (include "crypto-mine.componentName" (dict "root" . "component" "redis")) -}}
{{- else -}}
{{- .Values.secrets.redis.url -}}
{{- end -}}
{{- end }}

{{/*
REDIS_SHARD_URLS written into the chart's Secret when shards > 1: one dev Redis per shard, or
secrets.redis.shardUrls, which must name every shard with shard 0 (secrets.redis.url) first.
*/}}
{{- define "crypto-mine.redisShardUrls" -}}
{{- $count := int .Values.shards -}}
{{- if .Values.redis.enabled -}}
{{- $urls := list -}}
{{- range $component := include "crypto-mine.shardComponents" (dict "root" . "component" "redis") | fromJsonArray -}}
{{- $urls = append $urls (printf "redis://%s:6379/0" (include "crypto-mine.componentName" (dict "root" $ "component" $component))) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- $urls := .Values.secrets.redis.shardUrls -}}
{{- if ne (len $urls) $count -}}
{{- fail (printf "shards is %d: secrets.redis.shardUrls must name the Redis of every shard, shard 0 first (it names %d)" $count (len $urls)) -}}
{{- end -}}
{{- if and .Values.secrets.redis.url (ne (first $urls) .Values.secrets.redis.url) -}}
{{- fail "secrets.redis.shardUrls must start with secrets.redis.url (shard 0)" -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
{{- end }}

{{/*
The components of one sharded part, a JSON list: "<component>" for shard 0 (the name of a
deployment that never sharded), then "<component>-1", ... Call with (dict "root" $
"component" "worker").
*/}}
{{- define "crypto-mine.shardComponents" -}}
{{- $list := list .component -}}
{{- range $shard := untilStep 1 (int .root.Values.shards) 1 -}}
{{- $list = append $list (printf "%s-%d" $.component $shard) -}}
{{- end -}}
{{- toJson $list -}}
{{- end }}

{{/*
Whether the chart must create its Secret (some value is not taken from an existing Secret).
*/}}
{{- define "crypto-mine.needsSecret" -}}
{{- $s := .Values.secrets -}}
{{- if or (not $s.jwt.existingSecret) (not $s.idAllocatorToken.existingSecret) (not $s.mongodb.existingSecret) (not $s.redis.existingSecret) -}}
true
{{- end -}}
{{- end }}

{{/*
Whether this render reads the cluster it installs into: the release namespace's "default"
ServiceAccount, which every namespace has, can be looked up. `helm template`, GitOps renderers
and an install into a namespace that does not exist yet see nothing.
*/}}
{{- define "crypto-mine.seesCluster" -}}
{{- if (lookup "v1" "ServiceAccount" .Release.Namespace "default") -}}
true
{{- end -}}
{{- end }}

{{/*
TRUSTED_PROXY_COUNT of the api: api.trustedProxyCount, else 1 behind the chart's Ingress, else
0. Refuses what cannot be right: no count behind the Ingress (every client would share the
controller's address, and one client's failed logins would limit everyone), or a count that
clients could bypass by reaching the api without the proxy and writing X-Forwarded-For
themselves.
*/}}
{{- define "crypto-mine.trustedProxyCount" -}}
{{- $api := .Values.api -}}
{{- if hasKey $api.env "TRUSTED_PROXY_COUNT" -}}
{{- fail "api.env.TRUSTED_PROXY_COUNT: set api.trustedProxyCount instead, which the chart checks against the Ingress, the Service and the NetworkPolicies" -}}
{{- end -}}
{{- $count := ternary 1 0 $api.ingress.enabled -}}
{{- if not (kindIs "invalid" $api.trustedProxyCount) -}}
{{- $count = int $api.trustedProxyCount -}}
{{- end -}}
{{- if and $api.ingress.enabled (eq $count 0) -}}
{{- fail "api.trustedProxyCount is 0 behind the chart's Ingress: every client would share the ingress controller's address (per-IP limits and login limits for everyone at once)" -}}
{{- end -}}
{{- if gt $count 0 -}}
{{- if ne $api.service.type "ClusterIP" -}}
{{- fail (printf "api.trustedProxyCount is %d with an api Service of type %s: clients reaching the Service directly could write X-Forwarded-For themselves; keep it ClusterIP behind the proxy" $count $api.service.type) -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (empty .Values.networkPolicy.apiFrom) -}}
{{- fail (printf "api.trustedProxyCount is %d but networkPolicy.apiFrom lets every pod reach the api, which could write X-Forwarded-For itself: list your proxy (e.g. the ingress controller's namespace)" $count) -}}
{{- end -}}
{{- end -}}
{{- $count -}}
{{- end }}

{{/*
Settings shared by the api, worker and id-allocator (and the Redis URL of the operator).
*/}}
{{- define "crypto-mine.commonEnv" -}}
{{ include "crypto-mine.secretEnv" (dict "root" . "name" "MONGODB_URI" "ref" .Values.secrets.mongodb) }}
{{ include "crypto-mine.secretEnv" (dict "root" . "name" "REDIS_URL" "ref" .Values.secrets.redis) }}
{{- if gt (int .Values.shards) 1 }}
{{ include "crypto-mine.secretEnv" (dict "root" . "name" "REDIS_SHARD_URLS" "ref" (dict "existingSecret" .Values.secrets.redis.existingSecret "key" .Values.secrets.redis.shardUrlsKey)) }}
{{- end }}
- name: MONGODB_DB
  value: {{ .Values.config.mongodbDatabase | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
{{- range $name, $value := .Values.config.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Annotations of one component's pods: a checksum of what the chart's Secret is made from, so
that pods roll when a value they read through it changes (values read from the environment
roll them by themselves), then the component's podAnnotations.
Call with (dict "root" $ "component" "api" "values" .Values.api).
*/}}
{{- define "crypto-mine.podAnnotations" -}}
checksum/secret: {{ list .root.Values.secrets .root.Values.redis.enabled .root.Values.mongodb.enabled | toJson | sha256sum }}
{{- with .values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Extra environment of one component, from a map (values as strings).
*/}}
{{- define "crypto-mine.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Pod security context every pod of the chart runs with (restricted Pod Security Standard).
*/}}
{{- define "crypto-mine.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser | default 10001 }}
runAsGroup: {{ .runAsUser | default 10001 }}
fsGroup: {{ .runAsUser | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Container security context every container of the chart runs with.
*/}}
{{- define "crypto-mine.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
API version of PodDisruptionBudget the cluster serves: policy/v1 (1.21+) or policy/v1beta1.
*/}}
{{- define "crypto-mine.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1" -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end }}

{{/*
API version of HorizontalPodAutoscaler: autoscaling/v2 (1.23+) or autoscaling/v2beta2.
*/}}
{{- define "crypto-mine.hpaApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "autoscaling/v2" -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end }}

{{/*
Scheduling fields of one component's pods. Call with the component's values.
*/}}
{{- define "crypto-mine.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/*
Deployments the operator may scale, as a JSON list: operator.scaleTargets, else the chart's
worker Deployment. Feeds the operator's SCALE_TARGETS and its RBAC resourceNames.
*/}}
{{- define "crypto-mine.scaleTargets" -}}
{{- $targets := .Values.operator.scaleTargets -}}
{{- if not $targets -}}
{{- range $component := include "crypto-mine.shardComponents" (dict "root" . "component" "worker") | fromJsonArray -}}
{{- $targets = append $targets (include "crypto-mine.componentName" (dict "root" $ "component" $component)) -}}
{{- end -}}
{{- end -}}
{{- toJson $targets -}}
{{- end }}

{{/*
Refuse autoscaling values that cannot work together (rendered by each mode's template):
- mode operator with no operator to serve the QueueAutoscaler (unless another release's
  operator does: autoscaling.externalOperator), or one that does not watch this namespace;
- scale to zero (minReplicas 0) on a Prometheus metric with no api to export it: the queue
  depth comes from whichever api or worker pod holds the reporter lease, so with no api and no
  worker it vanishes and nothing would start the first worker;
- a drain-time target without a Prometheus to read the apply rate from;
- mode keda on the Redis trigger without an address.
*/}}
{{- define "crypto-mine.checkAutoscaling" -}}
{{- $a := .Values.autoscaling -}}
{{- if and (gt (int .Values.shards) 1) (has $a.mode (list "hpa" "keda")) -}}
{{- fail (printf "shards is %d: each shard's workers scale on their own queue, which autoscaling.mode operator (a QueueAutoscaler per shard) or none supports; mode %s reads one queue" (int .Values.shards) $a.mode) -}}
{{- end -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "autoscaling.minReplicas (%v) exceeds autoscaling.maxReplicas (%v)" $a.minReplicas $a.maxReplicas) -}}
{{- end -}}
{{- if eq $a.mode "operator" -}}
{{- if and (not .Values.operator.enabled) (not $a.externalOperator) -}}
{{- fail "autoscaling.mode operator needs the operator: set operator.enabled=true, or autoscaling.externalOperator=true when another release's operator watches this namespace, or pick autoscaling.mode keda, hpa or none" -}}
{{- end -}}
{{- $watched := .Values.operator.watchNamespace | default .Release.Namespace -}}
{{- if and .Values.operator.enabled (ne $watched "*") (not (has .Release.Namespace (splitList "," $watched | compact))) -}}
{{- fail (printf "operator.watchNamespace (%s) leaves out the release namespace %s: nothing would serve the worker's QueueAutoscaler" $watched .Release.Namespace) -}}
{{- end -}}
{{- if and (gt (int $a.targetDrainSeconds) 0) (not (or $a.metric.prometheusUrl .Values.operator.prometheusUrl)) -}}
{{- fail "autoscaling.targetDrainSeconds reads the apply rate from Prometheus: set autoscaling.metric.prometheusUrl or operator.prometheusUrl" -}}
{{- end -}}
{{- end -}}
{{- $prometheus := or (and (eq $a.mode "operator") (eq $a.metric.source "prometheus")) (and (eq $a.mode "keda") (eq $a.keda.trigger "prometheus")) -}}
{{- if and (eq (int $a.minReplicas) 0) $prometheus (not .Values.api.enabled) -}}
{{- fail "autoscaling.minReplicas 0 on a Prometheus metric needs api.enabled: with no api and no worker running, mining_click_queue_depth vanishes and the workers would stay at zero (use metric.source redis, or keda.trigger redis)" -}}
{{- end -}}
{{- if and (eq $a.mode "keda") (eq $a.keda.trigger "redis") (not $a.keda.redis.address) -}}
{{- fail "autoscaling.keda.trigger redis needs autoscaling.keda.redis.address (host:port)" -}}
{{- end -}}
{{- end }}

{{/*
The behavior of a HorizontalPodAutoscaler (mode hpa, and KEDA's in mode keda) from
autoscaling.behavior: maxStepPods per 15 s; scaleDown.maxStepPods 0 = no limit (100 %).
*/}}
{{- define "crypto-mine.hpaBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: {{ .scaleUp.stabilizationWindowSeconds }}
  policies:
    - type: Pods
      value: {{ .scaleUp.maxStepPods }}
      periodSeconds: 15
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDown.stabilizationWindowSeconds }}
  policies:
    {{- if gt (int .scaleDown.maxStepPods) 0 }}
    - type: Pods
      value: {{ .scaleDown.maxStepPods }}
      periodSeconds: 15
    {{- else }}
    - type: Percent
      value: 100
      periodSeconds: 15
    {{- end }}
{{- end }}

{{/*
RQ's Redis list of the click jobs waiting (what KEDA's Redis trigger counts): RQ's prefix and
the queue name of crypto_mine.common.names (QUEUE_NAME); tests/chart checks they agree.
*/}}
{{- define "crypto-mine.jobListName" -}}
rq:queue:mining-clicks
{{- end }}

{{/*
Name of the operator's leader Lease: operator.leaderElection.leaseName, else "<fullname>-operator".
*/}}
{{- define "crypto-mine.leaseName" -}}
{{- .Values.operator.leaderElection.leaseName | default (include "crypto-mine.componentName" (dict "root" . "component" "operator")) -}}
{{- end }}
