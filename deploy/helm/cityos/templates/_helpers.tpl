{{/* The layers, in the order the runtime starts them (cityos.layers.LAYER_NAMES). */}}
{{- define "cityos.layerNames" -}}
support knowledge acquisition interoperability
{{- end }}

{{/* Layers that run as a StatefulSet: stable pod names are their MQTT client ids. */}}
{{- define "cityos.statefulLayers" -}}
acquisition
{{- end }}

{{- define "cityos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cityos.fullname" -}}
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

{{/* The name of one layer's workload and Service: (list $ "knowledge"). */}}
{{- define "cityos.layerFullname" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "cityos.fullname" $root | trunc 45 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "cityos.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "cityos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cityos
{{- end }}

{{/* Selector labels of one layer's pods: (list $ "knowledge"). */}}
{{- define "cityos.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "cityos.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "cityos.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "cityos.secretName" -}}
{{- default (include "cityos.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* One env entry read from the chart's Secret: (list $ "CITYOS_DATABASE_URL" optional). */}}
{{- define "cityos.secretEnv" -}}
{{- $root := index . 0 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cityos.secretName" $root }}
      key: {{ index . 1 }}
      {{- if index . 2 }}
      optional: true
      {{- end }}
{{- end }}

{{/*
The environment of one layer's container: (list $ "knowledge").
Shared settings (cityos_kernel PlatformSettings, SupportSettings' token validation), the
Secret's settings, then the layer's own, then extraEnv and the layer's env values.
*/}}
{{- define "cityos.env" -}}
{{- $root := index . 0 }}
{{- $layer := index . 1 }}
{{- $values := $root.Values -}}
{{- if not (has $values.environment (list "development" "production")) }}
{{- fail (printf "environment must be development or production, not %q" $values.environment) }}
{{- end }}
{{- if not (has $values.auth.mode (list "off" "keycloak")) }}
{{- fail (printf "auth.mode must be keycloak or off, not %q" $values.auth.mode) }}
{{- end }}
{{- if and (eq $values.auth.mode "off") (eq $values.environment "production") }}
{{- fail "auth.mode off is refused with environment production (cityos would stop at start): use keycloak" }}
{{- end -}}
- name: CITYOS_ENV
  value: {{ $values.environment | quote }}
- name: CITYOS_LOG_LEVEL
  value: {{ $values.logLevel | quote }}
- name: CITYOS_BUS
  value: kafka
- name: CITYOS_KAFKA_BOOTSTRAP
  value: {{ required "kafka.bootstrap is required: the bootstrap servers of the external Kafka" $values.kafka.bootstrap | quote }}
- name: CITYOS_KAFKA_PARTITIONS
  value: {{ $values.kafka.partitions | quote }}
- name: CITYOS_KAFKA_REPLICATION_FACTOR
  value: {{ $values.kafka.replicationFactor | quote }}
- name: CITYOS_AUTH
  value: {{ $values.auth.mode | quote }}
{{- if eq $values.auth.mode "keycloak" }}
- name: CITYOS_AUTH_ISSUER
  value: {{ required "auth.issuer is required with auth.mode keycloak: the realm URL (https://id.example.org/realms/cityos)" $values.auth.issuer | quote }}
- name: CITYOS_AUTH_AUDIENCE
  value: {{ $values.auth.audience | quote }}
{{- end }}
{{ include "cityos.secretEnv" (list $root "CITYOS_DATABASE_URL" false) }}
{{ include "cityos.secretEnv" (list $root "CITYOS_MQTT_URL" false) }}
{{- if eq $layer "support" }}
{{ include "cityos.secretEnv" (list $root "CITYOS_AUDIT_SIGNING_KEY" (ne $values.environment "production")) }}
{{- if $values.keycloak.adminUrl }}
- name: CITYOS_KEYCLOAK_ADMIN_URL
  value: {{ $values.keycloak.adminUrl | quote }}
- name: CITYOS_KEYCLOAK_REALM
  value: {{ $values.keycloak.realm | quote }}
- name: CITYOS_KEYCLOAK_ADMIN_REALM
  value: {{ $values.keycloak.adminRealm | quote }}
- name: CITYOS_KEYCLOAK_ADMIN_USERNAME
  value: {{ $values.keycloak.adminUsername | quote }}
{{ include "cityos.secretEnv" (list $root "CITYOS_KEYCLOAK_ADMIN_PASSWORD" true) }}
{{- end }}
{{- if $values.smtp.host }}
- name: CITYOS_SMTP_HOST
  value: {{ $values.smtp.host | quote }}
- name: CITYOS_SMTP_PORT
  value: {{ $values.smtp.port | quote }}
- name: CITYOS_SMTP_FROM
  value: {{ $values.smtp.from | quote }}
- name: CITYOS_SMTP_STARTTLS
  value: {{ $values.smtp.starttls | quote }}
{{- if $values.smtp.username }}
- name: CITYOS_SMTP_USERNAME
  value: {{ $values.smtp.username | quote }}
{{ include "cityos.secretEnv" (list $root "CITYOS_SMTP_PASSWORD" true) }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $layer "acquisition" }}
# One MQTT client id (persistent session) and cache-invalidation group per replica.
- name: CITYOS_ACQUISITION_MQTT_CLIENT_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- range $name, $value := $values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $value := (index $values.layers $layer).env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/*
The scrape jobs of deploy/monitoring/prometheus.yml that name this chart's layers, as YAML:
the job names, metrics paths and layer labels stay those of that file.
*/}}
{{- define "cityos.scrapeJobs" -}}
{{- $src := .Files.Get "files/monitoring/prometheus.yml" | fromYaml }}
{{- $layers := splitList " " (include "cityos.layerNames" .) }}
{{- $jobs := list }}
{{- range $job := $src.scrape_configs }}
{{- $found := list }}
{{- range $static := $job.static_configs }}
{{- $layer := (default dict $static.labels).layer }}
{{- if has $layer $layers }}
{{- $found = append $found $layer }}
{{- end }}
{{- end }}
{{- if $found }}
{{- $jobs = append $jobs (dict "job_name" $job.job_name "metrics_path" (default "/metrics" $job.metrics_path) "layers" $found) }}
{{- end }}
{{- end }}
{{- if not $jobs }}
{{- fail "files/monitoring/prometheus.yml has no scrape job with a static target labelled with a cityos layer" }}
{{- end }}
jobs:
{{- toYaml $jobs | nindent 2 }}
{{- end }}
