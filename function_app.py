"""The Function app: wires the mover's blueprints together, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from activities.lock_wakeup import bp as lock_wakeup
from activities.network import bp as network_activities
from http_api.routes import bp as http_routes
from maintenance.retention import bp as retention
from orchestrations.ip_entities import bp as ip_entities
from orchestrations.move_ip import bp as move_orchestration

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(http_routes)
app.register_functions(move_orchestration)
app.register_functions(ip_entities)
app.register_functions(network_activities)
app.register_functions(lock_wakeup)
app.register_functions(retention)
