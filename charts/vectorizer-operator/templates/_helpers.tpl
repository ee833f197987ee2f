{{- define "vectorizer-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vectorizer-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "vectorizer-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "vectorizer-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "vectorizer-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "vectorizer-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vectorizer-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vectorizer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vectorizer-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vectorizer-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vectorizer-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the operator does in a namespace it watches, and nothing more: read the clusters
and write their status; create and repair the children it owns (server-side apply
needs create and patch); relabel and delete pods (role labels, rolling updates);
grow claims; record events.
*/}}
{{- define "vectorizer-operator.rules" -}}
- apiGroups: ["vectorizer.io"]
  resources: ["vectorizerclusters"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["vectorizer.io"]
  resources: ["vectorizerclusters/status"]
  verbs: ["patch"]
- apiGroups: ["vectorizer.io"]
  # Owner references with blockOwnerDeletion on the children.
  resources: ["vectorizerclusters/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "serviceaccounts"]
  verbs: ["create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["list", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Each cluster's CA, server certificate and API keys (generated, or read when the user
# provides them: the operator's own calls use the CA and the admin key).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# The cert-manager Certificate, when spec.tls.certManager is set.
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["get", "create", "patch", "delete"]
# Each cluster's PodMonitor and PrometheusRule (when the Prometheus Operator is installed;
# discovering that needs no grant).
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors", "prometheusrules"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
