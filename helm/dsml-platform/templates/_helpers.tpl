{{- /*
  Helpers of the dsml-platform chart. Names of our objects are fixed (dsml-settings, ...) because
  z2jh copies hub.extraVolumes into the hub Deployment as they are: values cannot hold the
  release name, so the objects they name cannot either (z2jh's own names, hub and proxy-public,
  carry no release name by default either).
*/}}

{{- /* Labels of every object of ours. */}}
{{- define "dsml.labels" -}}
app.kubernetes.io/name: dsml-platform
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}

{{- /* z2jh's app label (its nameOverride, else the chart's name). */}}
{{- define "dsml.z2jhApp" -}}
{{- .Values.jupyterhub.nameOverride | default "jupyterhub" -}}
{{- end }}

{{- /* Labels that select the hub pod (z2jh's jupyterhub.matchLabels for the hub). */}}
{{- define "dsml.hubSelector" -}}
app: {{ include "dsml.z2jhApp" . | quote }}
component: hub
release: {{ .Release.Name | quote }}
{{- end }}

{{- /* Labels of the scheduler's job pods (set by dsml.scheduler.executors.kubernetes). */}}
{{- define "dsml.jobSelector" -}}
app.kubernetes.io/managed-by: dsml-scheduler
{{- end }}

{{- /* z2jh's hub fullname: its own helper when the subchart is there, else its default. */}}
{{- define "dsml.hubFullname" -}}
{{- if .Values.jupyterhub.enabled -}}
{{- include "jupyterhub.hub.fullname" . -}}
{{- else -}}
hub
{{- end -}}
{{- end }}

{{- /*
  The hub pod's ServiceAccount, as z2jh names it (jupyterhub.hub-serviceaccount.fullname reads
  hub.serviceAccount from the subchart's values, which a parent sees under .Values.jupyterhub).
*/}}
{{- define "dsml.hubServiceAccount" -}}
{{- $sa := .Values.jupyterhub.hub.serviceAccount | default dict -}}
{{- if $sa.create -}}
{{- $sa.name | default (include "dsml.hubFullname" .) -}}
{{- else -}}
{{- $sa.name | default "default" -}}
{{- end -}}
{{- end }}

{{- /*
  The container port of a service in the hub pod: the targetPort (else port) of the hub
  Service's extra port with that name. Call with (list $ "scheduler").
*/}}
{{- define "dsml.servicePort" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $found := "" -}}
{{- range $root.Values.jupyterhub.hub.service.extraPorts -}}
{{- if eq .name $name -}}
{{- $found = .targetPort | default .port -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- printf "jupyterhub.hub.service.extraPorts has no port named %q; it needs one per service (scheduler, apps, portal)" $name | fail -}}
{{- end -}}
{{- $found -}}
{{- end }}

{{- /* An environment's image reference: name@digest when a digest is given, else name:tag. */}}
{{- define "dsml.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .name .digest -}}
{{- else -}}
{{- printf "%s:%s" .name .tag -}}
{{- end -}}
{{- end }}
