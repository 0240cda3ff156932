import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const url = process.env.ROTOR_WS ?? 'ws://127.0.0.1:8000/connection/websocket';
const client = new Centrifuge(url, { websocket: WebSocket, token: process.env.TOKEN });
const sub = client.newSubscription('news');
sub.on('publication', (ctx) => console.log('received', ctx.data));
sub.on('subscribed', async () => { await sub.publish({ text: 'hello' }); client.disconnect(); });
sub.subscribe();
client.connect();
