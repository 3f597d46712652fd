"""Tell the team when a deployed CLV run fails: a Prefect notification block (a webhook by default) and an
automation that sends through it whenever a flow run tagged `clv` ends Failed, Crashed or TimedOut.

`clv notifications setup --webhook-url URL` creates both on the server PREFECT_API_URL points at (after
`prefect deploy --all`); running it again replaces them, so it is safe to re-run with a new URL. The
message names the deployment, the flow run, its final state and the error, with a link to the run.
"""

from __future__ import annotations

BLOCK_NAME = "clv-run-failures"
AUTOMATION_NAME = "notify when a CLV run fails"
AUTOMATION_DESCRIPTION = ("Send the run, its state and its error to the team's webhook when a CLV flow run "
                          "fails, crashes or times out.")
FAILED_STATES = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")
SUBJECT = "CLV run failed: {{ flow_run.name }}"
# Jinja, rendered by the Prefect server with the flow run, its flow and deployment
BODY = ("CLV {{ deployment.name if deployment else flow.name }} run {{ flow_run.name }} ended "
        "{{ flow_run.state.name }}: {{ flow_run.state.message }}\n"
        "Run: {{ flow_run|ui_url }}")
# what the webhook receives: a JSON object with the subject and the body (Slack and Teams read "text")
DEFAULT_JSON = {"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"}


def setup_failure_notifications(webhook_url: str, allow_private_urls: bool = True) -> dict:
    """Create or replace the webhook block and the failure automation; returns their ids and names.
    `allow_private_urls=False` refuses webhooks on private addresses (Prefect's SSRF guard)."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    if not webhook_url.startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must start with http:// or https:// (got {webhook_url!r})")
    block = CustomWebhookNotificationBlock(name=BLOCK_NAME, url=webhook_url, method="POST", json_data=DEFAULT_JSON,
                                           allow_private_urls=allow_private_urls)
    block_id = block.save(BLOCK_NAME, overwrite=True)
    _delete_automations_named(AUTOMATION_NAME)
    automation = Automation(
        name=AUTOMATION_NAME,
        description=AUTOMATION_DESCRIPTION,
        enabled=True,
        trigger=EventTrigger(
            expect=set(FAILED_STATES),
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.clv"},
            posture=Posture.Reactive,
            threshold=1,
            within=0,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
    return {"block": BLOCK_NAME, "block_id": str(block_id), "automation": AUTOMATION_NAME,
            "automation_id": str(automation.id)}


def _delete_automations_named(name: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(name):
            client.delete_automation(automation.id)
