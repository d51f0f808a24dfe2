{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "mlbench.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name when it contains the chart name. */}}
{{- define "mlbench.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>" within (default 63) characters: the fullname is cut, never the
     suffix, so components keep distinct, readable names. (dict "ctx" $ "suffix" "x" "max" 63) */}}
{{- define "mlbench.componentName" -}}
{{- $max := .max | default 63 | int -}}
{{- $base := include "mlbench.fullname" .ctx | trunc (int (sub $max (add1 (len .suffix)))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base .suffix -}}
{{- end -}}

{{- define "mlbench.master.fullname" -}}
{{- include "mlbench.componentName" (dict "ctx" . "suffix" "master") -}}
{{- end -}}

{{- define "mlbench.dashboard.fullname" -}}
{{- include "mlbench.componentName" (dict "ctx" . "suffix" "dashboard") -}}
{{- end -}}

{{/* StatefulSet names stop at 52 characters: its pods get a controller-revision-hash label
     of the name plus 11 characters; "-headless" is added for its Service. */}}
{{- define "mlbench.postgresql.fullname" -}}
{{- include "mlbench.componentName" (dict "ctx" . "suffix" "postgresql" "max" 52) -}}
{{- end -}}

{{- define "mlbench.postgresql.secretName" -}}
{{- default (include "mlbench.postgresql.fullname" .) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{- define "mlbench.admin.secretName" -}}
{{- default .Values.admin.secretName .Values.admin.existingSecret -}}
{{- end -}}

{{- define "mlbench.admin.secretKey" -}}
{{- if .Values.admin.existingSecret -}}{{ .Values.admin.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{- define "mlbench.master.serviceAccountName" -}}
{{- default (include "mlbench.master.fullname" .) .Values.master.serviceAccount.name -}}
{{- end -}}

{{/* Namespace of the run Workflows and everything they create. */}}
{{- define "mlbench.workflowNamespace" -}}
{{- default .Release.Namespace .Values.argo.namespace -}}
{{- end -}}

{{/* The dataset PVC the workers mount; empty when datasets are off (an emptyDir per pod). */}}
{{- define "mlbench.datasets.claimName" -}}
{{- if .Values.datasets.enabled -}}
{{- default (include "mlbench.componentName" (dict "ctx" . "suffix" "data")) .Values.datasets.existingClaim -}}
{{- end -}}
{{- end -}}

{{/* Labels ---------------------------------------------------------------------------------- */}}

{{- define "mlbench.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mlbench.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlbench.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mlbench.labels" -}}
helm.sh/chart: {{ include "mlbench.chart" . }}
{{ include "mlbench.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlbench
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component: (dict "ctx" $ "component" "master") */}}
{{- define "mlbench.componentLabels" -}}
{{ include "mlbench.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlbench.componentSelector" -}}
{{ include "mlbench.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images ---------------------------------------------------------------------------------- */}}

{{/* (dict "image" .Values.master.image "ctx" $) -> repository:tag or repository@digest */}}
{{- define "mlbench.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag | toString) -}}
{{- end -}}
{{- end -}}


{{/* URLs ------------------------------------------------------------------------------------ */}}

{{/* The master as pods in the cluster reach it (fully qualified: run pods live in the
     workflow namespace, which may differ from the release's). */}}
{{- define "mlbench.master.clusterUrl" -}}
{{- printf "http://%s.%s.svc.%s:%v" (include "mlbench.master.fullname" .) .Release.Namespace .Values.clusterDomain .Values.master.service.port -}}
{{- end -}}

{{/* Checks ---------------------------------------------------------------------------------- */}}

{{- define "mlbench.validate" -}}
{{- if and (not .Values.postgresql.enabled) (not .Values.externalDatabase.existingSecret) -}}
{{- fail "mlbench: postgresql.enabled is false, so set externalDatabase.existingSecret to a Secret holding the database URL (key externalDatabase.key)" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled .Values.externalDatabase.existingSecret -}}
{{- fail "mlbench: choose one database: postgresql.enabled=true runs PostgreSQL in the release, externalDatabase.existingSecret names your own; set postgresql.enabled=false to use externalDatabase" -}}
{{- end -}}
{{- if and (eq .Values.master.defaultExecutor "argo") (not .Values.argo.enabled) -}}
{{- fail "mlbench: master.defaultExecutor is argo but argo.enabled is false; enable Argo or set master.defaultExecutor=local" -}}
{{- end -}}
{{- if and .Values.argo.enabled (not .Values.argo.server) -}}
{{- fail "mlbench: argo.enabled is true, so set argo.server to the Argo Server URL (e.g. https://argo-server.argo.svc:2746)" -}}
{{- end -}}
{{- end -}}

{{/* Environment ------------------------------------------------------------------------------- */}}

{{/* Where the master keeps its files and finds its database (master and migrations). */}}
{{- define "mlbench.master.dbEnv" -}}
- name: MLBENCH_DATA_DIR
  value: /data
- name: MLBENCH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- if .Values.postgresql.enabled }}
      name: {{ include "mlbench.postgresql.secretName" . }}
      key: database-url
      {{- else }}
      name: {{ .Values.externalDatabase.existingSecret }}
      key: {{ .Values.externalDatabase.key }}
      {{- end }}
{{- end -}}
