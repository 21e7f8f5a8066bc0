"""The Spark Connect server's application, from its Spark UI REST API (/api/v1): jobs, stages, executors."""

from __future__ import annotations

from collections import Counter

from dashboard.sources.http import get_json

RECENT_JOBS = 10


def application(ui_url: str) -> dict:
    api = f"{ui_url}/api/v1"
    apps = get_json("Spark UI", f"{api}/applications")
    if not apps:
        return {"app_id": None}
    app = apps[0]
    app_id = app["id"]
    jobs = get_json("Spark UI", f"{api}/applications/{app_id}/jobs")
    stages = get_json("Spark UI", f"{api}/applications/{app_id}/stages", params={"status": "active"})
    executors = get_json("Spark UI", f"{api}/applications/{app_id}/executors")
    return {
        "app_id": app_id,
        "app_name": app.get("name"),
        "jobs_by_status": dict(Counter(j.get("status", "UNKNOWN") for j in jobs)),
        "active_stages": len(stages),
        "recent_jobs": [
            {"job_id": j["jobId"], "name": (j.get("description") or j.get("name") or "")[:200],
             "status": j.get("status", "UNKNOWN"), "submitted": j.get("submissionTime"),
             "completed": j.get("completionTime"), "tasks": j.get("numTasks", 0),
             "failed_tasks": j.get("numFailedTasks", 0)}
            for j in sorted(jobs, key=lambda j: j["jobId"], reverse=True)[:RECENT_JOBS]
        ],
        "executors": [
            {"id": e["id"], "active": e.get("isActive", False), "cores": e.get("totalCores", 0),
             "active_tasks": e.get("activeTasks", 0), "completed_tasks": e.get("completedTasks", 0),
             "failed_tasks": e.get("failedTasks", 0), "memory_used": e.get("memoryUsed", 0),
             "max_memory": e.get("maxMemory", 0)}
            for e in executors
        ],
    }
