// Runs one call of the npm `mailhog` client, unchanged, and prints its result as JSON.
// Usage: node call.js PORT CALL [JSON-ARGS] (driven by tests/mailhog/test_npm_client.py)
'use strict'
const mailhog = require('mailhog')

// The client's getters (text, subject, attachments...) are not own enumerable
// properties: read them out so the test can see what the client computed.
function describe (item) {
  if (!item) return item
  return {
    ID: item.ID,
    text: item.text,
    html: item.html,
    subject: item.subject,
    from: item.from,
    to: item.to,
    cc: item.cc,
    bcc: item.bcc,
    replyTo: item.replyTo,
    date: item.date ? item.date.toISOString() : item.date,
    deliveryDate: item.deliveryDate ? item.deliveryDate.toISOString() : item.deliveryDate,
    attachments: item.attachments.map(a => ({
      name: a.name, type: a.type, encoding: a.encoding, Body: a.Body
    })),
    Created: item.Created
  }
}

function describeResult (result) {
  if (result && Array.isArray(result.items)) {
    return { total: result.total, count: result.count, start: result.start,
      items: result.items.map(describe) }
  }
  if (result && result.statusCode !== undefined) return { statusCode: result.statusCode }
  if (result && result.ID) return describe(result)
  return result
}

async function main () {
  const [port, call, rawArgs] = process.argv.slice(2)
  const api = mailhog({ host: '127.0.0.1', port: Number(port) })
  const args = rawArgs ? JSON.parse(rawArgs) : []
  const result = await api[call](...args)
  process.stdout.write(JSON.stringify(describeResult(result)))
}

main().catch(error => {
  process.stdout.write(JSON.stringify({ error: String(error) }))
  process.exitCode = 1
})
