#!/usr/bin/env bash
# Deploys a SAM template (default: infra/template.yaml) to LocalStack's CloudFormation, the same
# way `sam package` + `sam deploy` would on AWS: lint, package code to an artifacts bucket,
# deploy with DeployFunctions=false (and DeployAnalytics=false), print the outputs.
#
#   localstack/provision.sh [STACK_NAME] [TEMPLATE]   (default: alkasba-lake infra/template.yaml)
#
# A stack whose packaged template is unchanged since its last successful deploy is left alone.
# LocalStack 4.10 (community) validates updates and deletes of a stack without applying its
# conditions, so a stack whose functions are conditional cannot be reliably updated or deleted;
# LocalStack keeps no state across restarts here, so the remedy is a restart.
source "$(dirname "$0")/lib.sh"
RESTART_HINT="restart LocalStack (localstack/stop.sh && localstack/start.sh) and provision again: LocalStack cannot update or delete stacks with conditional functions"

STACK="${1:-${ALKASBA_STACK:-alkasba-lake}}"
TEMPLATE="${2:-$REPO/infra/template.yaml}"
ARTIFACTS="${ALKASBA_ARTIFACTS_BUCKET:-alkasba-lake-artifacts}"
[[ -f "$TEMPLATE" ]] || die "template not found: $TEMPLATE"
[[ "$STACK" =~ ^[a-z][a-z0-9-]{0,40}$ ]] || die "stack name '$STACK' must be lowercase letters, digits and dashes (it names the bucket)"
require_installed
require_healthy

if [[ "${ALKASBA_SKIP_LINT:-0}" != 1 ]]; then
  say "linting $(basename "$TEMPLATE") with cfn-lint"
  if ! "$VENV/bin/cfn-lint" "$TEMPLATE" >&2; then
    die "invalid template: $TEMPLATE (cfn-lint findings above)"
  fi
fi

awsl s3api head-bucket --bucket "$ARTIFACTS" >/dev/null 2>&1 \
  || awsl s3api create-bucket --bucket "$ARTIFACTS" >/dev/null
packaged="$ALKASBA_HOME/$STACK.packaged.yaml"
awsl cloudformation package --template-file "$TEMPLATE" --s3-bucket "$ARTIFACTS" \
  --s3-prefix "$STACK" --output-template-file "$packaged" >/dev/null \
  || die "packaging $TEMPLATE failed"

status="$(awsl cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].StackStatus' --output text 2>/dev/null || true)"
mkdir -p "$ALKASBA_HOME/stacks"
stamp="$ALKASBA_HOME/stacks/$STACK.sha256"
want="$( { cat "$packaged"; echo "${ALKASBA_STACK_PARAMETERS:-}"; } | sha256sum | cut -d' ' -f1)"

case "$status" in
  DELETE_IN_PROGRESS|DELETE_FAILED) die "stack $STACK is $status; $RESTART_HINT" ;;
  REVIEW_IN_PROGRESS|ROLLBACK_COMPLETE|ROLLBACK_FAILED|CREATE_FAILED)
    say "stack $STACK is $status from an earlier failed deploy; deleting it first"
    awsl cloudformation delete-stack --stack-name "$STACK"
    awsl cloudformation wait stack-delete-complete --stack-name "$STACK"
    status="" ;;
esac

# create-stack / update-stack rather than `cloudformation deploy`: LocalStack's change-set
# validation of an update rejects references into resources whose condition is false (the
# functions), while update-stack applies the conditions first, as AWS does.
if (( $(wc -c < "$packaged") <= 51200 )); then
  body=(--template-body "file://$packaged")
else
  # Over CloudFormation's 51,200-byte limit for a template body: by S3, as `sam deploy` does.
  key="$STACK/template-${want:0:16}.yaml"
  awsl s3 cp --quiet "$packaged" "s3://$ARTIFACTS/$key" || die "uploading the packaged template failed"
  body=(--template-url "$ENDPOINT/$ARTIFACTS/$key")
fi
args=(--stack-name "$STACK" "${body[@]}"
      --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND
      --parameters ParameterKey=DeployFunctions,ParameterValue=false)
# Glue and Athena do not run on LocalStack here: their resources are AWS-only.
grep -q '^  DeployAnalytics:' "$packaged" && args+=(ParameterKey=DeployAnalytics,ParameterValue=false)
# Extra parameters: ALKASBA_STACK_PARAMETERS="Key=Value Key2=Value2" (tests shorten timeouts).
for kv in ${ALKASBA_STACK_PARAMETERS:-}; do
  [[ "$kv" == *=* ]] || die "ALKASBA_STACK_PARAMETERS: \"$kv\" is not Key=Value"
  args+=("ParameterKey=${kv%%=*},ParameterValue=${kv#*=}")
done
fail_events() {
  awsl cloudformation describe-stack-events --stack-name "$STACK" \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId,ResourceStatusReason]' \
    --output text >&2 || true
  die "deploying stack $STACK failed (events above)"
}
print_outputs() {
  local outs
  outs="$(awsl cloudformation describe-stacks --stack-name "$STACK" \
    --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text)"
  if [[ -z "$outs" || "$outs" == None ]]; then
    # A template without Outputs legitimately has none; one with Outputs must report them.
    grep -q '^Outputs:' "$TEMPLATE" && die "stack $STACK reports no outputs (a LocalStack update went wrong); $RESTART_HINT"
    return 0
  fi
  echo "$outs"
}

if [[ "$status" == *_COMPLETE && "$status" != *ROLLBACK* && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
  say "stack $STACK is up to date ($status)"
  print_outputs
  exit 0
fi
if [[ -z "$status" || "$status" == None || "$status" == REVIEW_IN_PROGRESS || "$status" == *FAILED || "$status" == ROLLBACK_COMPLETE ]]; then
  say "creating stack $STACK"
  awsl cloudformation create-stack "${args[@]}" >/dev/null || die "create-stack $STACK was refused"
  awsl cloudformation wait stack-create-complete --stack-name "$STACK" || fail_events
else
  say "updating stack $STACK (was $status)"
  if ! err="$(awsl cloudformation update-stack "${args[@]}" 2>&1 >/dev/null)"; then
    [[ "$err" == *"No updates are to be performed"* ]] || die "update-stack $STACK was refused: $err; $RESTART_HINT"
    say "no changes"
  else
    awsl cloudformation wait stack-update-complete --stack-name "$STACK" || fail_events
    status="$(awsl cloudformation describe-stacks --stack-name "$STACK" --query 'Stacks[0].StackStatus' --output text)"
    [[ "$status" == UPDATE_COMPLETE ]] || die "updating stack $STACK ended $status; $RESTART_HINT"
  fi
fi
print_outputs
echo "$want" > "$stamp"
