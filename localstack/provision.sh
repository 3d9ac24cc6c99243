#!/usr/bin/env bash
# Deploys a SAM template (default: infra/template.yaml) to LocalStack's CloudFormation, the same
# way `sam package` + `sam deploy` would on AWS: lint, package code to an artifacts bucket,
# deploy with DeployFunctions=false, print the outputs.
#
#   localstack/provision.sh [STACK_NAME] [TEMPLATE]     (default: alkasba-lake infra/template.yaml)
source "$(dirname "$0")/lib.sh"

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
case "$status" in
  REVIEW_IN_PROGRESS|ROLLBACK_COMPLETE|ROLLBACK_FAILED|CREATE_FAILED|DELETE_FAILED)
    say "stack $STACK is $status from an earlier failed deploy; deleting it first"
    awsl cloudformation delete-stack --stack-name "$STACK"
    awsl cloudformation wait stack-delete-complete --stack-name "$STACK" ;;
esac

say "deploying stack $STACK"
if ! awsl cloudformation deploy --template-file "$packaged" --stack-name "$STACK" \
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND \
    --parameter-overrides DeployFunctions=false --no-fail-on-empty-changeset >&2; then
  awsl cloudformation describe-stack-events --stack-name "$STACK" \
    --query 'StackEvents[?contains(ResourceStatus, `FAILED`)].[LogicalResourceId,ResourceStatusReason]' \
    --output text >&2 || true
  die "deploying stack $STACK failed (events above)"
fi
awsl cloudformation describe-stacks --stack-name "$STACK" \
  --query 'Stacks[0].Outputs[].[OutputKey,OutputValue]' --output text
